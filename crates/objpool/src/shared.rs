//! The pool's algorithm: slots, the wait queue, and the hand-off between them.
//!
//! # Implementation details
//!
//! The pool owns `capacity` slots, fixed at build time, of which `max_size` are in service. Each slot is a state word (`EMPTY`,
//! `IDLE` or `BUSY`, see [`slot`](crate::slot)) and room for one object, padded to its own cache
//! line. Objects never move between slots, and a slot is owned by whoever moved it to `BUSY`.
//!
//! **Taking.** A caller scans the slots for an `IDLE` one, then for an `EMPTY` one, and claims
//! the first it finds with a compare-and-swap to `BUSY`. The scan starts where the calling
//! thread last found an object, so threads that take and return in a loop each settle on their
//! own slot and write no shared cache line (the hint is only written when it changes): a get and a return touch only that slot's line. A
//! claimed `EMPTY` slot is filled by running the creator outside any lock; if that fails the
//! slot is given back. Since every object lives in a slot, at most `max_size` exist at once.
//!
//! **Waiting.** When no slot can be claimed the caller joins a FIFO queue under a mutex and
//! sleeps (parks its thread, or returns `Pending`). `control` mirrors the queue's length, plus a
//! bit each for "closed" and "shrinking". While it is non-zero, new callers do not scan but take
//! the slow path under the lock (queueing behind the waiters), so waiters are served in order
//! and cannot be starved by a stream of newcomers. The fast path reads the word it always
//! read: closing and resizing cost it nothing.
//!
//! **Returning.** A returned slot is marked `IDLE` (or `EMPTY` after a discard or detach),
//! then `control` is read. If callers wait, the returner claims free slots again under the
//! queue lock and hands them to the oldest waiters (a *grant*: the slot stays `BUSY` and
//! changes owner). Newcomers cannot take the slot in between, since they queue while
//! `control` is non-zero, so a returned object goes to the oldest waiter. The race between a caller
//! that is about to queue and a returner that is about to leave is closed like Dekker's
//! algorithm: the waiter publishes `control` then scans the slots, the returner publishes the
//! slot then reads `control`, each with a full barrier between its two steps, so that either
//! the waiter finds the slot or the returner finds the waiter and grants it the slot
//! (`rescue`). The barriers are asymmetric (`sync::light_barrier`, `sync::heavy_barrier`):
//! returns are the hot path and waits the rare one, so on Linux the returner's barrier is only a
//! compiler fence and the waiter's is `membarrier(2)`, which makes every running thread of the
//! process execute a full barrier before it returns (either the returner's store came before
//! its barrier and the scan sees it, or its load came after and sees `control`). Only the
//! transition of `control` from 0 (the first waiter, a close, a shrink) pays it, about 17 µs
//! on a 2-vCPU VM with another thread running, 0.1 µs alone; later waiters queue behind a
//! `control` every returner already sees. Where `membarrier` is missing (other systems, Miri,
//! an old kernel) both sides are `SeqCst` fences. The loom models check the algorithm with
//! `SeqCst` fences on both sides; the asymmetric form rests on `membarrier`'s guarantee.
//! Returning with no waiter costs no locked instruction: a store of the slot's state (its
//! owner is its only writer) and a load of a line that is only written when callers wait.
//!
//! **Closing and shrinking** use the same pattern as waiting. `close` publishes `CLOSED` (with
//! the heavy barrier), then scans for idle objects to drop; a returner publishes its slot, then
//! reads `control`: one of them sees the other, so no object outlives the close in an idle slot.
//! A shrink adds *debt* (slots to retire), publishes `SHRINKING` (the same way) and retires free
//! slots at once (empty ones first, then idle ones, dropping their objects); a returner that sees `SHRINKING` pays
//! the debt with its own slot. A retired slot stays `BUSY`, owned by the pool (`retired`), so
//! the scans skip it; growing forgives debt first, then releases retired slots as `EMPTY`.
//! Slots are never reallocated, so a guard's pointer to its slot stays valid across resizes.
//!
//! **Creating.** The creator runs outside the lock, in the slot the caller claimed `EMPTY`
//! (see [`create`](crate::create) for async creators and panics). A creation that fails,
//! panics or is cancelled releases the slot as `EMPTY` through `put_back`, so a waiter is served.
//!
//! **Cancelling.** A waiter that gives up (a timeout, a dropped future) removes itself from the
//! queue under the mutex. If it is no longer there it was granted a slot in the meantime, and it
//! passes that slot on as if returning it, so nothing is lost and the next waiter is served.
//!
//! **Counters.** Gets and returns that find an object update no shared counter: reuses are
//! counted in the slot's state word by the CAS that claims it, and in-use and idle counts are
//! read off the slot states. Creation, discards, waits and timeouts are rarer and counted in
//! shared atomics. An exact peak needs a count of checkouts, one shared RMW per get and per
//! return: it is opt-in (`exact_peak`), since it is the one write the fast path otherwise
//! shares with no thread.

use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::create::{Create, Creating, block_on};
use crate::error::{AddError, AddRefused, GetError, ResizeError, TryGetError};
use crate::histogram::WaitBuckets;
use crate::reset::{AsyncReset, Outcome, Resetting};
use crate::slot::{BUSY, EMPTY, FRESH, IDLE, Slot, Taken};
use crate::stats::Stats;
use crate::sync::{self, Arc, AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::waiter::{Grant, WaitQueue, Waiter, Wake};

/// The reset run on return; `false` discards the object.
pub(crate) type Recycle<T> = Box<dyn Fn(&mut T) -> bool + Send + Sync>;

/// `control` bit: the pool is closed.
const CLOSED: usize = 1 << (usize::BITS - 1);
/// `control` bit: the pool owes slots to a shrink (`Locked::debt > 0`).
const SHRINKING: usize = 1 << (usize::BITS - 2);

#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    added: AtomicU64,
    discarded: AtomicU64,
    detached: AtomicU64,
    create_errors: AtomicU64,
    reset_panics: AtomicU64,
    waits: AtomicU64,
    wait_nanos: AtomicU64,
    wait_buckets: WaitBuckets,
    timeouts: AtomicU64,
    peak_in_use: AtomicUsize,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the queue lock protects.
#[derive(Debug, Default)]
struct Locked {
    queue: WaitQueue,
    closed: bool,
    /// Slots a shrink still has to retire, as they come free.
    debt: usize,
    /// Slots out of service: `BUSY`, owned by the pool, without an object. Together with
    /// `debt` they are `capacity - max_size` slots.
    retired: Vec<usize>,
}

impl Locked {
    /// The value `Shared::control` mirrors.
    fn control(&self) -> usize {
        let closed = if self.closed { CLOSED } else { 0 };
        let shrinking = if self.debt > 0 { SHRINKING } else { 0 };
        self.queue.len() | closed | shrinking
    }
}

/// What a slow-path step leaves to do once the lock is released: wake-ups to deliver and
/// objects to drop (either may run user code, which must not run under the lock).
struct Aftermath<T> {
    wakes: Vec<Wake>,
    dropped: Vec<T>,
}

impl<T> Aftermath<T> {
    fn new() -> Self {
        Self { wakes: Vec::new(), dropped: Vec::new() }
    }

    /// Wakes first: dropping an object may panic, and the waiters must hear of their grant.
    fn finish(self) {
        let Self { wakes, dropped } = self;
        for wake in wakes {
            wake.wake();
        }
        drop(dropped);
    }
}

/// The state shared by a pool's handles and guards.
pub(crate) struct Shared<T> {
    slots: Box<[CachePadded<Slot<T>>]>,
    /// Zero unless the slow path must run: the number of queued waiters, with the `CLOSED`
    /// and `SHRINKING` bits. Written under the `locked` lock only.
    control: CachePadded<AtomicUsize>,
    locked: Mutex<Locked>,
    create: Create<T>,
    recycle: Option<Recycle<T>>,
    /// The reset run by the next taker of a returned object (see [`reset`](crate::reset)).
    reset_async: Option<AsyncReset<T>>,
    /// Whether checkouts are counted in `in_use`, for an exact peak.
    exact_peak: bool,
    /// The current `max_size`: `capacity` minus the retired slots and the debt.
    target: AtomicUsize,
    /// Objects checked out, when `exact_peak` is on.
    in_use: CachePadded<AtomicUsize>,
    counters: CachePadded<Counters>,
}

// SAFETY: the slots' objects are only reached through ownership of a `BUSY` slot, which one
// party holds at a time, so sharing the pool between threads only ever moves a `T` from one
// thread to another: `T: Send` suffices. The creator and reset closures are `Send + Sync`.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Shared<T> {}

/// Releases a slot as `EMPTY` when dropped, even if dropping an object panics first.
struct VacateOnDrop<'a, T>(&'a Shared<T>, usize);

impl<T> Drop for VacateOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.put_back(Taken::Vacant(self.1));
    }
}

/// How a pool is made, beyond its creator.
pub(crate) struct Config<T> {
    pub(crate) capacity: usize,
    pub(crate) max_size: usize,
    pub(crate) recycle: Option<Recycle<T>>,
    pub(crate) reset_async: Option<AsyncReset<T>>,
    pub(crate) exact_peak: bool,
}

impl<T> Shared<T> {
    pub(crate) fn new(config: Config<T>, create: Create<T>) -> Self {
        // Before any slot can be returned: see `sync::barrier`.
        sync::init_barriers();
        let Config { capacity, max_size, recycle, reset_async, exact_peak } = config;
        debug_assert!(0 < max_size && max_size <= capacity);
        let slots: Box<[_]> = (0..capacity).map(|_| CachePadded::new(Slot::new())).collect();
        let retired: Vec<usize> = (max_size..capacity).collect();
        for &index in &retired {
            let owned = slots[index].try_own(EMPTY);
            debug_assert!(owned);
        }
        Self {
            slots,
            control: CachePadded::new(AtomicUsize::new(0)),
            locked: Mutex::new(Locked { retired, ..Locked::default() }),
            create,
            recycle,
            reset_async,
            exact_peak,
            target: AtomicUsize::new(max_size),
            in_use: CachePadded::new(AtomicUsize::new(0)),
            counters: CachePadded::new(Counters::default()),
        }
    }

    pub(crate) fn max_size(&self) -> usize {
        self.target.load(Ordering::Relaxed)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.control.load(Ordering::Acquire) & CLOSED != 0
    }

    pub(crate) fn creates_async(&self) -> bool {
        self.create.is_async()
    }

    /// The slots, for a pool handle to keep a direct pointer to: see [`Slots`].
    pub(crate) fn slots(&self) -> &[CachePadded<Slot<T>>] {
        &self.slots
    }

    /// Claims a slot in state `from`, scanning from this thread's hint.
    #[inline]
    fn claim(slots: &[CachePadded<Slot<T>>], from: u64) -> Option<usize> {
        let hint = sync::scan_hint();
        let start = if hint < slots.len() { hint } else { 0 };
        // The hinted slot is almost always the one: try it before setting up the scan.
        if slots[start].try_own(from) {
            return Some(start);
        }
        Self::claim_scan(slots, from, start)
    }

    #[cold]
    #[inline(never)]
    fn claim_scan(slots: &[CachePadded<Slot<T>>], from: u64, start: usize) -> Option<usize> {
        let index = (start + 1..slots.len()).chain(0..start).find(|&index| slots[index].try_own(from))?;
        sync::set_scan_hint(index);
        Some(index)
    }

    /// Claims an idle object, or else an empty slot to create one in (if the pool creates).
    #[inline]
    fn claim_any(&self, slots: &[CachePadded<Slot<T>>]) -> Option<Taken> {
        if let Some(index) = Self::claim(slots, IDLE) {
            return Some(Taken::Object(index));
        }
        if !self.create.creates() {
            return None;
        }
        Self::claim(slots, EMPTY).map(Taken::Vacant)
    }

    /// Claims slot `index` if it is free, as [`claim_any`](Self::claim_any) would.
    fn claim_at(&self, index: usize) -> Option<Taken> {
        let slot = &self.slots[index];
        if slot.try_own(IDLE) {
            Some(Taken::Object(index))
        } else if self.create.creates() && slot.try_own(EMPTY) {
            Some(Taken::Vacant(index))
        } else {
            None
        }
    }

    /// Claims a slot unless the slow path must run (callers are waiting, who come first, or
    /// the pool is closed or shrinking). `slots` are this pool's slots, passed in by a handle
    /// that keeps a direct pointer to them.
    #[inline]
    pub(crate) fn take_fast(&self, slots: &[CachePadded<Slot<T>>]) -> Option<Taken> {
        debug_assert!(std::ptr::eq(slots, &*self.slots));
        if self.control.load(Ordering::Relaxed) != 0 {
            return None;
        }
        self.claim_any(slots)
    }

    /// `try_get` after the fast path found nothing: `Exhausted` unless the slow path has to
    /// run, which then decides under the lock.
    #[cold]
    pub(crate) fn try_take_slow(&self) -> Result<Taken, TryGetError> {
        if self.control.load(Ordering::Relaxed) == 0 {
            return Err(TryGetError::Exhausted);
        }
        let mut after = Aftermath::new();
        let taken = {
            let mut locked = self.locked.lock();
            if locked.closed {
                return Err(TryGetError::Closed);
            }
            self.retire_debt(&mut locked, None, &mut after);
            self.publish(&locked);
            if locked.queue.len() > 0 { None } else { self.claim_any(&self.slots) }
        };
        after.finish();
        taken.ok_or(TryGetError::Exhausted)
    }

    /// Makes a claimed slot hold an object (counting a reuse, or running the creator) and
    /// counts the checkout.
    ///
    /// # Errors
    /// The creator's failure, or `Closed` if the pool closed before it ran; the slot has then
    /// been given back.
    #[inline]
    pub(crate) fn fill(&self, taken: Taken) -> Result<usize, GetError> {
        let index = match taken {
            Taken::Object(index) if !self.due_reset(index) => index,
            Taken::Object(index) => self.reset_blocking(index)?,
            Taken::Vacant(index) => self.create_in(index)?,
        };
        self.checked_out();
        Ok(index)
    }

    /// Whether the object in slot `index`, which the caller just took, is due its async reset.
    /// Clears the mark: the caller runs the reset now.
    #[inline(always)]
    pub(crate) fn due_reset(&self, index: usize) -> bool {
        // SAFETY: the caller owns the slot.
        self.reset_async.is_some() && unsafe { self.slots[index].take_dirty() }
    }

    /// Starts the async reset of the object in slot `index`.
    ///
    /// # Safety
    /// The caller owns slot `index`, which holds an object, and keeps owning it until the
    /// returned reset is dropped.
    pub(crate) unsafe fn start_reset(&self, index: usize) -> Result<Resetting<'_>, Outcome> {
        let reset = self.reset_async.as_ref().expect("only a pool with an async reset resets");
        // SAFETY: the caller owns the slot and its object for the life of the borrow.
        let object = unsafe { &mut *self.slots[index].get() };
        Resetting::start(reset, object)
    }

    /// Ends an async reset of the object in slot `index` (owned by the caller, the reset
    /// dropped): a kept object stays, a refused one is dropped and leaves the slot vacant.
    pub(crate) fn reset_done(&self, index: usize, outcome: Outcome) -> Taken {
        match outcome {
            Outcome::Keep => return Taken::Object(index),
            Outcome::Refused => {}
            Outcome::Panicked => bump(&self.counters.reset_panics),
        }
        bump(&self.counters.discarded);
        // If the object's destructor panics, the slot is freed on the way out.
        let vacate = VacateOnDrop(self, index);
        // SAFETY: the caller owns the slot and it holds an object; it stays the caller's,
        // vacant.
        drop(unsafe { self.slots[index].take() });
        std::mem::forget(vacate);
        Taken::Vacant(index)
    }

    /// Frees the slot of an abandoned async reset, dropping the reset and then the object
    /// (whose state the interrupted reset left unknown).
    pub(crate) fn abandon_reset(&self, index: usize, resetting: Resetting<'_>) {
        let _vacate = VacateOnDrop(self, index);
        drop(resetting);
        bump(&self.counters.discarded);
        // SAFETY: the caller owns the slot and it holds an object; `_vacate` frees the slot.
        drop(unsafe { self.slots[index].take() });
    }

    /// Runs the async reset of slot `index` on this thread; a refused object is replaced.
    #[cold]
    #[inline(never)]
    fn reset_blocking(&self, index: usize) -> Result<usize, GetError> {
        // SAFETY: we own the slot (just taken, holding an object) until the reset is dropped.
        let outcome = match unsafe { self.start_reset(index) } {
            Ok(mut resetting) => block_on(|cx| resetting.poll(cx)),
            Err(outcome) => outcome,
        };
        match self.reset_done(index, outcome) {
            Taken::Object(index) => Ok(index),
            Taken::Vacant(index) => self.create_in(index),
        }
    }

    /// Counts a checkout in the exact peak.
    #[inline(always)]
    pub(crate) fn checked_out(&self) {
        if self.exact_peak {
            let now = self.in_use.fetch_add(1, Ordering::Relaxed) + 1;
            if now > self.counters.peak_in_use.load(Ordering::Relaxed) {
                self.counters.peak_in_use.fetch_max(now, Ordering::Relaxed);
            }
        }
    }

    #[inline(always)]
    fn checked_in(&self) {
        if self.exact_peak {
            self.in_use.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Runs the creator for a claimed empty slot, on this thread.
    #[inline(never)]
    fn create_in(&self, index: usize) -> Result<usize, GetError> {
        if self.is_closed() {
            self.put_back(Taken::Vacant(index));
            return Err(GetError::Closed);
        }
        match self.create.run_blocking() {
            Ok(value) => {
                self.filled(index, value);
                Ok(index)
            }
            Err(failure) => {
                self.creation_failed(index);
                Err(failure.into())
            }
        }
    }

    /// Starts an async creation for a claimed empty slot; the caller polls it and then calls
    /// [`filled`](Self::filled) or [`creation_failed`](Self::creation_failed).
    pub(crate) fn start_creation(&self, index: usize) -> Result<Creating<T>, GetError> {
        if self.is_closed() {
            self.put_back(Taken::Vacant(index));
            return Err(GetError::Closed);
        }
        self.create.start().map_err(|failure| {
            self.creation_failed(index);
            failure.into()
        })
    }

    /// Puts a created object in its slot, which the caller owns.
    pub(crate) fn filled(&self, index: usize, value: T) {
        // SAFETY: the caller owns the vacant slot.
        unsafe { self.slots[index].write(value) };
        bump(&self.counters.created);
        sync::set_scan_hint(index);
        if !self.exact_peak {
            self.observe_in_use();
        }
    }

    /// Frees the slot of a failed creation.
    pub(crate) fn creation_failed(&self, index: usize) {
        bump(&self.counters.create_errors);
        self.put_back(Taken::Vacant(index));
    }

    /// Frees the slot of an abandoned async creation, after dropping its future (which may
    /// panic: the slot is freed all the same).
    pub(crate) fn abandon_creation(&self, index: usize, creating: Creating<T>) {
        let _vacate = VacateOnDrop(self, index);
        drop(creating);
    }

    /// Runs the creator, for pre-creation.
    pub(crate) fn create_raw(&self) -> Result<T, GetError> {
        self.create.run_blocking().map_err(GetError::from)
    }

    /// Starts an async creation, for pre-creation.
    pub(crate) fn create_raw_async(&self) -> Result<Creating<T>, GetError> {
        self.create.start().map_err(GetError::from)
    }

    /// Puts an object made or given at build time into the next empty slot.
    pub(crate) fn pre_fill(&self, index: usize, value: T, created: bool) {
        let slot = &self.slots[index];
        let owned = slot.try_own(EMPTY);
        debug_assert!(owned, "pre-filled slot was not empty");
        // SAFETY: we just claimed the empty slot, and fill it before releasing it as idle.
        unsafe {
            slot.write(value);
            slot.release(FRESH);
        }
        bump(if created { &self.counters.created } else { &self.counters.added });
    }

    /// Gives back an owned slot holding an object: resets it and makes it available.
    ///
    /// `slot` is slot `index`, reached through a pointer the guard keeps.
    #[inline(always)]
    pub(crate) fn release(&self, slot: &Slot<T>, index: usize) {
        debug_assert!(std::ptr::eq(slot, &*self.slots[index]));
        self.checked_in();
        let keep = match &self.recycle {
            None => true,
            Some(recycle) => {
                // SAFETY: the caller owns the slot and it holds an object.
                let value = unsafe { &mut *slot.get() };
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| recycle(value))) {
                    Ok(keep) => keep,
                    Err(_) => {
                        bump(&self.counters.reset_panics);
                        false
                    }
                }
            }
        };
        if keep {
            // SAFETY: we own the slot and it holds an object. Pairs with the heavy
            // barrier in `publish`: see "Returning" above.
            unsafe {
                if self.reset_async.is_some() {
                    slot.set_dirty();
                }
                slot.release(IDLE);
            }
            if self.control.load(Ordering::SeqCst) != 0 {
                self.after_release(index);
            }
        } else {
            self.drop_object(index);
        }
    }

    /// Drops the object of a checked-out slot and frees the slot.
    pub(crate) fn discard(&self, index: usize) {
        self.checked_in();
        self.drop_object(index);
    }

    fn drop_object(&self, index: usize) {
        bump(&self.counters.discarded);
        let _vacate = VacateOnDrop(self, index);
        // SAFETY: the caller owns the slot and it holds an object; `_vacate` frees the slot
        // after the object is dropped, even if its destructor panics.
        drop(unsafe { self.slots[index].take() });
    }

    /// Moves the object out of a checked-out slot for good and frees the slot.
    pub(crate) fn detach(&self, index: usize) -> T {
        self.checked_in();
        bump(&self.counters.detached);
        // SAFETY: the caller owns the slot and it holds an object.
        let value = unsafe { self.slots[index].take() };
        self.put_back(Taken::Vacant(index));
        value
    }

    /// Gives up ownership of a slot: to the oldest waiter, or back to the pool.
    #[inline(always)]
    pub(crate) fn put_back(&self, taken: Taken) {
        let (index, state) = match taken {
            Taken::Object(index) => (index, IDLE),
            Taken::Vacant(index) => (index, EMPTY),
        };
        // SAFETY: the caller owns the slot, and `taken` says whether it holds an object.
        // Pairs with the heavy barrier in `publish`: see "Returning" above.
        unsafe { self.slots[index].release(state) };
        if self.control.load(Ordering::SeqCst) != 0 {
            self.after_release(index);
        }
    }

    /// The slow path of a return: serves waiters, pays a shrink's debt, or drops the object
    /// of a closed pool.
    #[cold]
    #[inline(never)]
    fn after_release(&self, index: usize) {
        let mut after = Aftermath::new();
        {
            let mut locked = self.locked.lock();
            self.serve_locked(&mut locked, Some(index), &mut after);
        }
        after.finish();
    }

    /// Brings the slots in line with the locked state, slot `hint` first (its cache line is
    /// already here): a closed pool drops what comes back; otherwise free slots pay a shrink's
    /// debt, then go to the oldest waiters.
    fn serve_locked(&self, locked: &mut Locked, hint: Option<usize>, after: &mut Aftermath<T>) {
        if locked.closed {
            if let Some(index) = hint {
                self.reclaim(index, after);
            }
            return;
        }
        self.retire_debt(locked, hint, after);
        while locked.queue.len() > 0 {
            let Some(taken) =
                hint.and_then(|index| self.claim_at(index)).or_else(|| self.claim_any(&self.slots))
            else {
                break;
            };
            let waiter = locked.queue.pop().expect("queue is not empty");
            after.wakes.push(waiter.grant(Grant::Slot(taken)));
        }
        self.publish(locked);
    }

    /// Takes an idle object out of slot `index` to be dropped, leaving the slot empty.
    fn reclaim(&self, index: usize, after: &mut Aftermath<T>) {
        let slot = &self.slots[index];
        if slot.try_reclaim() {
            bump(&self.counters.discarded);
            // SAFETY: we own the slot, which held an idle object; it is released as empty.
            unsafe {
                after.dropped.push(slot.take());
                slot.release(EMPTY);
            }
        }
    }

    /// Retires free slots while a shrink owes some, empty ones first (nothing is lost), then
    /// idle ones (their objects are dropped). Slots in use are retired when they come back.
    fn retire_debt(&self, locked: &mut Locked, hint: Option<usize>, after: &mut Aftermath<T>) {
        while locked.debt > 0 {
            let index = match hint.filter(|&index| self.slots[index].try_own(EMPTY)) {
                Some(index) => index,
                None => match Self::claim(&self.slots, EMPTY) {
                    Some(index) => index,
                    None => {
                        let Some(index) =
                            (0..self.slots.len()).find(|&index| self.slots[index].try_reclaim())
                        else {
                            break;
                        };
                        bump(&self.counters.discarded);
                        // SAFETY: we own the slot, which held an idle object.
                        after.dropped.push(unsafe { self.slots[index].take() });
                        index
                    }
                },
            };
            locked.retired.push(index);
            locked.debt -= 1;
        }
    }

    /// Mirrors the locked state in `control`.
    ///
    /// When `control` goes from 0 to non-zero (the first waiter, a close, a shrink), it runs the
    /// heavy side of the barrier pair before returning, so that the scan the caller makes next
    /// and every returner's read of `control` meet (see "Returning" above). While `control`
    /// stays non-zero, nothing more is needed: a returner that read it before that transition's
    /// barrier had its slot seen by the scan that followed the barrier, and one that read it
    /// after sees it non-zero and takes the slow path.
    fn publish(&self, locked: &Locked) {
        let control = locked.control();
        // Exact under the lock, which every write of `control` holds.
        let before = self.control.load(Ordering::Relaxed);
        self.control.store(control, Ordering::Relaxed);
        if before == 0 && control != 0 {
            sync::heavy_barrier();
        }
    }

    /// Queues `waiter`; it may have been granted a slot (or told that the pool is closed) by
    /// the time this returns.
    pub(crate) fn enqueue(&self, waiter: &Arc<Waiter>) {
        let mut after = Aftermath::new();
        {
            let mut locked = self.locked.lock();
            if locked.closed {
                // The waiter is the caller: nobody to wake.
                drop(waiter.grant(Grant::Closed));
                return;
            }
            locked.queue.push(waiter.clone());
            // Pairs with the light barrier in `Slot::release`: see "Returning" above.
            self.publish(&locked);
            // Serve the oldest waiters from any slot that came free meanwhile (usually none:
            // the caller found none a moment ago).
            self.serve_locked(&mut locked, None, &mut after);
            if waiter.granted().is_none() && !self.exact_peak {
                // Every slot in service is busy while a caller waits (in a pool that creates;
                // an unmanaged one may have empty slots): in use is at a peak.
                let busy = if self.create.creates() { self.slots.len() } else { self.count(BUSY) };
                let in_use = busy.saturating_sub(locked.retired.len());
                self.counters.peak_in_use.fetch_max(in_use, Ordering::Relaxed);
            }
        }
        after.finish();
    }

    /// Takes `waiter` out of the queue. Returns what it was granted meanwhile, if anything: a
    /// slot the caller now owns, or the news that the pool closed.
    pub(crate) fn cancel(&self, waiter: &Arc<Waiter>) -> Option<Grant> {
        let mut locked = self.locked.lock();
        if locked.queue.remove(waiter) {
            self.publish(&locked);
            return None;
        }
        drop(locked);
        let granted = waiter.granted();
        debug_assert!(granted.is_some(), "a waiter left the queue without a grant");
        granted
    }

    /// Passes on what a cancelled waiter was granted.
    pub(crate) fn forgo(&self, grant: Grant) {
        if let Grant::Slot(taken) = grant {
            self.put_back(taken);
        }
    }

    /// Records a finished wait.
    pub(crate) fn record_wait(&self, since: Instant) {
        let waited = since.elapsed();
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        bump(&self.counters.waits);
        self.counters.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.counters.wait_buckets.record(waited);
    }

    /// Takes a slot, waiting on the current thread until `deadline` if need be. `called` is when
    /// the caller's call began, if it read the clock: a timeout reports the time from there.
    pub(crate) fn acquire_blocking(
        &self,
        deadline: Option<Instant>,
        called: Option<Instant>,
    ) -> Result<usize, GetError> {
        if let Some(taken) = self.take_fast(&self.slots) {
            return self.fill(taken);
        }
        let since = Instant::now();
        let waiter = Waiter::new();
        waiter.register_thread(sync::current_thread());
        self.enqueue(&waiter);
        let grant = loop {
            if let Some(grant) = waiter.granted() {
                break grant;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                match self.cancel(&waiter) {
                    Some(grant) => break grant,
                    None => {
                        bump(&self.counters.timeouts);
                        return Err(GetError::Timeout { waited: called.unwrap_or(since).elapsed() });
                    }
                }
            }
            sync::park(deadline);
        };
        let Grant::Slot(taken) = grant else { return Err(GetError::Closed) };
        self.record_wait(since);
        self.fill(taken)
    }

    /// Closes the pool: waiters and later gets fail with `Closed`, idle objects are dropped
    /// now and objects in use as they come back. Returns `false` if it was closed already.
    pub(crate) fn close(&self) -> bool {
        let mut after = Aftermath::new();
        {
            let mut locked = self.locked.lock();
            if locked.closed {
                return false;
            }
            locked.closed = true;
            locked.debt = 0;
            for waiter in locked.queue.drain() {
                after.wakes.push(waiter.grant(Grant::Closed));
            }
            // The returner's half is in `release`; the same pattern as "Returning" above:
            // either this scan sees a returned object, or its returner sees `CLOSED`.
            self.publish(&locked);
            for index in 0..self.slots.len() {
                self.reclaim(index, &mut after);
            }
        }
        after.finish();
        true
    }

    /// Sets `max_size`: a larger size takes effect at once, a smaller one retires free slots
    /// now and the others as their objects come back.
    pub(crate) fn resize(&self, max_size: usize) -> Result<(), ResizeError> {
        if max_size == 0 {
            return Err(ResizeError::Zero);
        }
        if max_size > self.slots.len() {
            return Err(ResizeError::AboveCapacity { requested: max_size, capacity: self.slots.len() });
        }
        let mut after = Aftermath::new();
        {
            let mut locked = self.locked.lock();
            if locked.closed {
                return Err(ResizeError::Closed);
            }
            let old = self.target.swap(max_size, Ordering::Relaxed);
            if max_size >= old {
                let mut grow = max_size - old;
                let forgiven = grow.min(locked.debt);
                locked.debt -= forgiven;
                grow -= forgiven;
                for _ in 0..grow {
                    let index = locked.retired.pop().expect("retired slots and debt make up the capacity");
                    // SAFETY: the pool owns its retired slots, which hold no object. Released
                    // under the lock; `serve_locked` below serves the waiters.
                    unsafe { self.slots[index].release(EMPTY) };
                }
            } else {
                locked.debt += old - max_size;
                // As in `close`: either the scan below finds a returned object, or its
                // returner sees `SHRINKING` and pays the debt itself.
                self.publish(&locked);
            }
            self.serve_locked(&mut locked, None, &mut after);
        }
        after.finish();
        Ok(())
    }

    /// Puts an existing object into a free slot (serving the oldest waiter with it).
    pub(crate) fn add(&self, value: T) -> Result<(), AddError<T>> {
        let mut after = Aftermath::new();
        {
            let mut locked = self.locked.lock();
            let refused = if locked.closed {
                Some(AddRefused::Closed)
            } else if locked.debt > 0 {
                Some(AddRefused::Full)
            } else {
                None
            };
            if let Some(reason) = refused {
                return Err(AddError { object: value, reason });
            }
            let Some(index) = Self::claim(&self.slots, EMPTY) else {
                return Err(AddError { object: value, reason: AddRefused::Full });
            };
            // SAFETY: we own the empty slot, and fill it before releasing it as idle; waiters
            // queue under the lock we hold, so `serve_locked` sees them all.
            unsafe {
                self.slots[index].write(value);
                self.slots[index].release(FRESH);
            }
            bump(&self.counters.added);
            self.serve_locked(&mut locked, Some(index), &mut after);
        }
        after.finish();
        Ok(())
    }

    /// Updates the in-use high-water mark from the slot states.
    fn observe_in_use(&self) {
        let in_use = self.count(BUSY).saturating_sub(self.slots.len() - self.max_size());
        self.counters.peak_in_use.fetch_max(in_use, Ordering::Relaxed);
    }

    fn count(&self, state: u64) -> usize {
        self.slots.iter().filter(|slot| slot.state() == state).count()
    }

    /// Starts a new interval for the high-water mark: from what is in use now. Returns the
    /// mark of the interval that ends.
    pub(crate) fn reset_peak(&self) -> usize {
        let now = if self.exact_peak { self.in_use.load(Ordering::Relaxed) } else { self.stats().in_use };
        self.counters.peak_in_use.swap(now, Ordering::Relaxed)
    }

    /// A snapshot of the pool's counters.
    pub(crate) fn stats(&self) -> Stats {
        let (waiting, retired, closed) = {
            let locked = self.locked.lock();
            (locked.queue.len(), locked.retired.len(), locked.closed)
        };
        // One pass, each slot read once, so that idle + in use never exceeds the slots in
        // service even while slots change state under the scan.
        let (mut idle, mut busy) = (0usize, 0usize);
        for slot in self.slots.iter() {
            match slot.state() {
                IDLE => idle += 1,
                BUSY => busy += 1,
                _ => {}
            }
        }
        let in_use = busy.saturating_sub(retired);
        if !self.exact_peak {
            self.counters.peak_in_use.fetch_max(in_use, Ordering::Relaxed);
        }
        let c = &*self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            max_size: self.max_size(),
            idle,
            in_use,
            waiting,
            closed,
            created: load(&c.created),
            added: load(&c.added),
            reused: self.slots.iter().map(|slot| slot.reuses()).sum(),
            discarded: load(&c.discarded),
            detached: load(&c.detached),
            create_errors: load(&c.create_errors),
            reset_panics: load(&c.reset_panics),
            peak_in_use: c.peak_in_use.load(Ordering::Relaxed),
            waits: load(&c.waits),
            total_wait: Duration::from_nanos(load(&c.wait_nanos)),
            wait_histogram: c.wait_buckets.snapshot(),
            timeouts: load(&c.timeouts),
        }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Retired slots are owned by the pool itself; give them back so the slots drop clean.
        let retired = std::mem::take(&mut self.locked.lock().retired);
        for index in retired {
            // SAFETY: the pool owns its retired slots, which hold no object.
            unsafe { self.slots[index].release(EMPTY) };
        }
    }
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("max_size", &self.max_size())
            .field("capacity", &self.slots.len())
            .field("control", &self.control.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
