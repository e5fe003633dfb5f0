//! One place in the pool: a state word and room for one object.

use std::mem::MaybeUninit;

use crate::sync::{self, AtomicU64, Ordering, UnsafeCell};

/// The slot holds no object; whoever moves it to `BUSY` may create one in it.
pub(crate) const EMPTY: u64 = 0;
/// The slot holds an object that nobody is using.
pub(crate) const IDLE: u64 = 1;
/// The slot is owned by exactly one party (a guard, a creator, or a grant on its way to a
/// waiter); only that party touches `value`.
pub(crate) const BUSY: u64 = 2;

/// The slot holds a pre-created object that was never handed out: idle, but its first get
/// is not a reuse. Claimed by the same scans as `IDLE` (bit 0 set means an object is idle).
pub(crate) const FRESH: u64 = 3;

/// The low bits of the state word hold the state; the rest count reuses.
const STATE_BITS: u64 = 0b11;
const ONE_REUSE: u64 = 0b100;

/// What a caller took from the pool: a slot with an object in it, or an empty slot to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// `BUSY` slot holding an initialised object.
    Object(usize),
    /// `BUSY` slot with no object: the taker creates one or gives the slot back.
    Vacant(usize),
}

/// A slot of the pool.
pub(crate) struct Slot<T> {
    /// The state (`EMPTY`, `IDLE` or `BUSY`) in the low two bits, and above them how many
    /// times an existing object in this slot was handed out again. Counting in the state word
    /// makes the count free: the CAS that claims an idle object also bumps it. The move to
    /// `BUSY` is an acquire CAS and the move away from it a release (or stronger) RMW, so the
    /// owner's writes to `value` are seen by the next owner.
    state: AtomicU64,
    /// # Safety
    /// Initialised exactly when the state is `IDLE`, or `BUSY` for an owner that took it as
    /// [`Taken::Object`] (or has since filled it). Accessed only by the owner of a `BUSY` slot.
    value: UnsafeCell<MaybeUninit<T>>,
    /// Whether the object came back since its last async reset. Accessed only by the owner of
    /// a `BUSY` slot, like `value`.
    dirty: UnsafeCell<bool>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU64::new(EMPTY),
            value: UnsafeCell::new(MaybeUninit::uninit()),
            dirty: UnsafeCell::new(false),
        }
    }

    /// Moves the slot from `from` (`IDLE`, which also matches `FRESH`, or `EMPTY`) to `BUSY`,
    /// making the caller its owner. Claiming an `IDLE` object counts a reuse.
    #[inline]
    pub(crate) fn try_own(&self, from: u64) -> bool {
        let current = self.state.load(Ordering::Relaxed);
        let state = current & STATE_BITS;
        let matches = if from == IDLE { state & IDLE != 0 } else { state == from };
        if !matches {
            return false;
        }
        let reuses = current & !STATE_BITS;
        let reuses = if state == IDLE { reuses + ONE_REUSE } else { reuses };
        self.state.compare_exchange(current, reuses | BUSY, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// Moves an idle object's slot to `BUSY` without counting a reuse: for the pool itself
    /// taking the object back (to drop it), not for handing it out.
    pub(crate) fn try_reclaim(&self) -> bool {
        let current = self.state.load(Ordering::Relaxed);
        current & IDLE != 0
            && self
                .state
                .compare_exchange(current, current & !STATE_BITS | BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Gives up ownership, leaving the slot in state `to` (`IDLE`, `FRESH` or `EMPTY`), ordered before
    /// the caller's later loads as [`sync::release_light`] describes.
    ///
    /// # Safety
    /// The caller owns the slot; `to` is `IDLE` exactly when the slot holds an object.
    #[inline]
    pub(crate) unsafe fn release(&self, to: u64) {
        debug_assert_eq!(self.state(), BUSY);
        sync::release_light(&self.state, BUSY ^ to);
    }

    /// The slot's state, for statistics and assertions (`FRESH` reads as `IDLE`).
    pub(crate) fn state(&self) -> u64 {
        match self.state.load(Ordering::Relaxed) & STATE_BITS {
            FRESH => IDLE,
            state => state,
        }
    }

    /// How many times an existing object was handed out from this slot.
    pub(crate) fn reuses(&self) -> u64 {
        self.state.load(Ordering::Relaxed) >> STATE_BITS.count_ones()
    }

    /// Puts `value` into the slot.
    ///
    /// # Safety
    /// The caller owns the slot and it holds no object.
    #[inline]
    pub(crate) unsafe fn write(&self, value: T) {
        // SAFETY: the caller owns the slot, so nobody else accesses the cell.
        self.value.with_mut(|cell| unsafe { (*cell).write(value) });
        // SAFETY: as above. A new object needs no reset.
        self.dirty.with_mut(|dirty| unsafe { *dirty = false });
    }

    /// Moves the object out of the slot, leaving it without one.
    ///
    /// # Safety
    /// The caller owns the slot and it holds an object.
    #[inline]
    pub(crate) unsafe fn take(&self) -> T {
        // SAFETY: the caller owns the slot and the object is initialised.
        self.value.with_mut(|cell| unsafe { (*cell).assume_init_read() })
    }

    /// Marks the object as due an async reset before its next use.
    ///
    /// # Safety
    /// The caller owns the slot.
    #[inline]
    pub(crate) unsafe fn set_dirty(&self) {
        // SAFETY: the caller owns the slot, so nobody else accesses the cell.
        self.dirty.with_mut(|dirty| unsafe { *dirty = true });
    }

    /// Whether the object is due an async reset; clears the mark.
    ///
    /// # Safety
    /// The caller owns the slot.
    #[inline]
    pub(crate) unsafe fn take_dirty(&self) -> bool {
        // SAFETY: the caller owns the slot, so nobody else accesses the cell.
        self.dirty.with_mut(|dirty| unsafe { std::mem::replace(&mut *dirty, false) })
    }

    /// A pointer to the object.
    ///
    /// # Safety
    /// The caller owns the slot and it holds an object; the pointer is only used while both
    /// stay true.
    #[inline]
    pub(crate) unsafe fn get(&self) -> *mut T {
        self.value.with_mut(|cell| cell.cast::<T>())
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        // Dropping the pool: nobody holds a guard (each guard keeps the pool alive), so only
        // `IDLE` slots hold objects.
        let state = self.state();
        debug_assert_ne!(state, BUSY, "a slot was still owned when the pool was dropped");
        if state == IDLE {
            // SAFETY: `&mut self`: nobody else can reach the slot, and `IDLE` means initialised.
            drop(unsafe { self.take() });
        }
    }
}
