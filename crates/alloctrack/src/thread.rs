//! Each thread's link to its registry slot.
//!
//! The allocation path reads one const-initialised thread-local pointer (no lazy
//! initialisation, no destructor, so it is valid at every point of a thread's life, tear-down
//! included). The first allocation of a thread claims a slot and registers an exit hook in a
//! second thread-local; registering may itself allocate, and those allocations already find
//! the slot. When the thread exits the hook releases the slot and points the thread at the
//! shared overflow slot for whatever its remaining destructors free.

use std::cell::Cell;
use std::ptr;

use crate::registry::{Counts, Registry, Slot};
use crate::sync::{AtomicBool, Ordering};

/// Threads that can each have a slot of their own at once; more share one contended slot.
pub const MAX_THREADS: usize = 1024;

pub(crate) static REGISTRY: Registry<MAX_THREADS> = Registry::new();

/// Set by the first allocation through a [`Tracking`](crate::Tracking) allocator.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// `CURRENT` before the thread's first allocation.
const UNCLAIMED: usize = 1;
/// Tag bit of `CURRENT` values that are not the thread's own slot: `UNCLAIMED`, or the address
/// of the overflow slot with this bit set. Slots are 128-byte aligned, so real slot addresses
/// never have it, and the allocation path tells "own slot" from everything else with one test.
const NOT_OWN: usize = 1;

std::thread_local! {
    /// The slot this thread writes (untagged), or a tagged value: see `NOT_OWN`.
    static CURRENT: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Releases the slot when the thread exits.
    static EXIT: ExitHook = const { ExitHook };
}

fn overflow_tagged() -> usize {
    ptr::from_ref(REGISTRY.overflow()) as usize | NOT_OWN
}

struct ExitHook;

impl Drop for ExitHook {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|current| {
            let own = current.replace(overflow_tagged());
            if own & NOT_OWN == 0 {
                // SAFETY: an untagged `CURRENT` is the address of a slot in the static registry.
                REGISTRY.release(unsafe { &*(own as *const Slot) });
            }
        });
    }
}

/// Whether a `Tracking` allocator has served an allocation in this process.
pub(crate) fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Runs `own` with the calling thread's own slot, or `shared` with the overflow slot (for a
/// thread without one), claiming a slot on the thread's first call.
#[inline(always)]
pub(crate) fn with_slot<R>(own: impl FnOnce(&Slot) -> R, shared: impl FnOnce(&Slot) -> R) -> R {
    let current = CURRENT.try_with(Cell::get).unwrap_or(UNCLAIMED);
    if current & NOT_OWN == 0 {
        // SAFETY: an untagged `CURRENT` is the address of a slot in the static registry.
        return own(unsafe { &*(current as *const Slot) });
    }
    match claim(current) {
        Some(slot) => own(slot),
        None => shared(REGISTRY.overflow()),
    }
}

/// The calling thread's own slot, if it has claimed one: the allocator's fast path, which
/// leaves every other case to `with_slot`.
#[inline(always)]
pub(crate) fn claimed_slot() -> Option<&'static Slot> {
    let current = CURRENT.try_with(Cell::get).unwrap_or(UNCLAIMED);
    // SAFETY: an untagged `CURRENT` is the address of a slot in the static registry.
    (current & NOT_OWN == 0).then(|| unsafe { &*(current as *const Slot) })
}

/// The slow path of `with_slot`: claims a slot if the thread has none yet. `None` means the
/// thread uses the overflow slot.
#[cold]
#[inline(never)]
fn claim(current: usize) -> Option<&'static Slot> {
    if current != UNCLAIMED {
        return None;
    }
    INSTALLED.store(true, Ordering::Relaxed);
    let slot = REGISTRY.claim();
    if REGISTRY.is_overflow(slot) {
        let _ = CURRENT.try_with(|current| current.set(overflow_tagged()));
        return None;
    }
    let recorded = CURRENT.try_with(|current| current.set(ptr::from_ref(slot) as usize)).is_ok();
    // Registering the exit hook may allocate: those allocations already find the slot.
    if !recorded || EXIT.try_with(|_| ()).is_err() {
        // The thread is past its thread-local destructors: nothing would release the slot,
        // so share the overflow slot instead.
        let _ = CURRENT.try_with(|current| current.set(overflow_tagged()));
        REGISTRY.release(slot);
        return None;
    }
    Some(slot)
}

/// The calling thread's own counters, or `None` if it shares the overflow slot.
/// The calling thread's counters if they can be read: the tracking allocator is installed and
/// the thread has a slot of its own. For layers that skip what they cannot measure.
#[cfg(any(feature = "tracing", feature = "tower"))]
pub(crate) fn counts_if_measured() -> Option<Counts> {
    if installed() { own_counts() } else { None }
}

pub(crate) fn own_counts() -> Option<Counts> {
    let mut counts = None;
    with_slot(|slot| counts = Some(slot.counts()), |_| {});
    counts
}
