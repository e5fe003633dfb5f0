//! The pool's algorithm: slots, the wait queue, and the hand-off between them.
//!
//! # Implementation details
//!
//! The pool owns `max_size` slots, fixed at build time. Each slot is a state word (`EMPTY`,
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
//! sleeps (parks its thread, or returns `Pending`). `waiting` mirrors the queue's length. While
//! it is non-zero, new callers do not scan but queue behind the waiters, so waiters are served
//! in order and cannot be starved by a stream of newcomers.
//!
//! **Returning.** A returned slot is marked `IDLE` (or `EMPTY` after a discard or detach),
//! then `waiting` is read. If callers wait, the returner claims free slots again under the
//! queue lock and hands them to the oldest waiters (a *grant*: the slot stays `BUSY` and
//! changes owner). Newcomers cannot take the slot in between, since they queue while
//! `waiting` is non-zero, so a returned object goes to the oldest waiter. The race between a caller
//! that is about to queue and a returner that is about to leave is closed like Dekker's
//! algorithm: the waiter publishes `waiting` then scans the slots, the returner publishes the
//! slot then reads `waiting`, the waiter with a `SeqCst` fence between its two steps and the
//! returner with a `SeqCst` swap and load (`sync::release_seq_cst`). Whichever comes second in
//! the single total order of `SeqCst` operations sees the other side's write, so either the waiter finds the slot or the
//! returner finds the waiter and grants it the slot (`rescue`). Returning with no waiter costs
//! one locked RMW and two loads of a line that is only written when callers wait.
//!
//! **Cancelling.** A waiter that gives up (a timeout, a dropped future) removes itself from the
//! queue under the mutex. If it is no longer there it was granted a slot in the meantime, and it
//! passes that slot on as if returning it, so nothing is lost and the next waiter is served.
//!
//! **Counters.** Gets and returns that find an object update no shared counter: reuses are
//! counted in the slot's state word by the CAS that claims it, and in-use and idle counts are read off the slot
//! states. Creation, discards, waits and timeouts are rarer and counted in shared atomics.

use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::error::{BoxError, GetError};
use crate::slot::{BUSY, EMPTY, FRESH, IDLE, Slot, Taken};
use crate::stats::Stats;
use crate::sync::{self, Arc, AtomicU64, AtomicUsize, Mutex, Ordering, fence};
use crate::waiter::{WaitQueue, Waiter};

/// The creator of new objects.
pub(crate) type Create<T> = Box<dyn Fn() -> Result<T, BoxError> + Send + Sync>;
/// The reset run on return; `false` discards the object.
pub(crate) type Recycle<T> = Box<dyn Fn(&mut T) -> bool + Send + Sync>;

#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    discarded: AtomicU64,
    detached: AtomicU64,
    create_errors: AtomicU64,
    reset_panics: AtomicU64,
    waits: AtomicU64,
    wait_nanos: AtomicU64,
    timeouts: AtomicU64,
    peak_in_use: AtomicUsize,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The state shared by a pool's handles and guards.
pub(crate) struct Shared<T> {
    slots: Box<[CachePadded<Slot<T>>]>,
    /// The number of queued waiters. Written under the `queue` lock only.
    waiting: CachePadded<AtomicUsize>,
    queue: Mutex<WaitQueue>,
    create: Create<T>,
    recycle: Option<Recycle<T>>,
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

impl<T> Shared<T> {
    pub(crate) fn new(max_size: usize, create: Create<T>, recycle: Option<Recycle<T>>) -> Self {
        debug_assert!(max_size > 0);
        Self {
            slots: (0..max_size).map(|_| CachePadded::new(Slot::new())).collect(),
            waiting: CachePadded::new(AtomicUsize::new(0)),
            queue: Mutex::new(WaitQueue::default()),
            create,
            recycle,
            counters: CachePadded::new(Counters::default()),
        }
    }

    pub(crate) fn max_size(&self) -> usize {
        self.slots.len()
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

    /// Claims an idle object, or else an empty slot to create one in.
    #[inline]
    fn claim_any(slots: &[CachePadded<Slot<T>>]) -> Option<Taken> {
        if let Some(index) = Self::claim(slots, IDLE) {
            return Some(Taken::Object(index));
        }
        Self::claim(slots, EMPTY).map(Taken::Vacant)
    }

    /// Claims a slot unless callers are already waiting (who come first). `slots` are this
    /// pool's slots, passed in by a handle that keeps a direct pointer to them.
    #[inline]
    pub(crate) fn take_fast(&self, slots: &[CachePadded<Slot<T>>]) -> Option<Taken> {
        debug_assert!(std::ptr::eq(slots, &*self.slots));
        if self.waiting.load(Ordering::Relaxed) != 0 {
            return None;
        }
        Self::claim_any(slots)
    }

    /// Makes a claimed slot hold an object: counts a reuse, or runs the creator.
    ///
    /// # Errors
    /// The creator's error; the slot has then been given back.
    #[inline]
    pub(crate) fn fill(&self, taken: Taken) -> Result<usize, BoxError> {
        match taken {
            Taken::Object(index) => Ok(index),
            Taken::Vacant(index) => self.create_in(index),
        }
    }

    /// Runs the creator for a claimed empty slot.
    #[inline(never)]
    fn create_in(&self, index: usize) -> Result<usize, BoxError> {
        let vacate = VacateOnDrop(self, index);
        let value = (self.create)();
        std::mem::forget(vacate);
        match value {
            Ok(value) => {
                // SAFETY: we own the vacant slot.
                unsafe { self.slots[index].write(value) };
                bump(&self.counters.created);
                sync::set_scan_hint(index);
                self.observe_in_use();
                Ok(index)
            }
            Err(error) => {
                bump(&self.counters.create_errors);
                self.put_back(Taken::Vacant(index));
                Err(error)
            }
        }
    }

    /// Runs the creator, for pre-creation.
    pub(crate) fn create_raw(&self) -> Result<T, BoxError> {
        (self.create)()
    }

    /// Puts an object made at build time into the next empty slot.
    pub(crate) fn pre_fill(&self, index: usize, value: T) {
        let slot = &self.slots[index];
        let owned = slot.try_own(EMPTY);
        debug_assert!(owned, "pre-filled slot was not empty");
        // SAFETY: we just claimed the empty slot, and fill it before releasing it as idle.
        unsafe {
            slot.write(value);
            slot.release(FRESH);
        }
        bump(&self.counters.created);
    }

    /// Gives back an owned slot holding an object: resets it and makes it available.
    ///
    /// `slot` is slot `index`, reached through a pointer the guard keeps.
    #[inline(always)]
    pub(crate) fn release(&self, slot: &Slot<T>, index: usize) {
        debug_assert!(std::ptr::eq(slot, &*self.slots[index]));
        let keep = match &self.recycle {
            None => true,
            Some(recycle) => {
                // SAFETY: the caller owns the slot and it holds an object.
                let value = unsafe { &mut *slot.get() };
                match panic::catch_unwind(AssertUnwindSafe(|| recycle(value))) {
                    Ok(keep) => keep,
                    Err(_) => {
                        bump(&self.counters.reset_panics);
                        false
                    }
                }
            }
        };
        if keep {
            // SAFETY: we own the slot and it holds an object. Pairs with the fence in
            // `enqueue`: see "Returning" above.
            unsafe { slot.release(IDLE) };
            if self.waiting.load(Ordering::SeqCst) != 0 {
                self.rescue_locked(index);
            }
        } else {
            self.discard(index);
        }
    }

    /// Drops the object in an owned slot and frees the slot.
    pub(crate) fn discard(&self, index: usize) {
        bump(&self.counters.discarded);
        let _vacate = VacateOnDrop(self, index);
        // SAFETY: the caller owns the slot and it holds an object; `_vacate` frees the slot
        // after the object is dropped, even if its destructor panics.
        drop(unsafe { self.slots[index].take() });
    }

    /// Moves the object out of an owned slot for good and frees the slot.
    pub(crate) fn detach(&self, index: usize) -> T {
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
        // Pairs with the fence in `enqueue`: see "Returning" above.
        unsafe { self.slots[index].release(state) };
        if self.waiting.load(Ordering::SeqCst) != 0 {
            self.rescue_locked(index);
        }
    }

    /// Grants free slots to waiters after a return: the returned slot `index` first (its cache
    /// line is already here), then any other.
    #[cold]
    #[inline(never)]
    fn rescue_locked(&self, index: usize) {
        let mut queue = self.queue.lock();
        if queue.len() == 0 {
            return;
        }
        let slot = &self.slots[index];
        let taken = if slot.try_own(IDLE) {
            Some(Taken::Object(index))
        } else if slot.try_own(EMPTY) {
            Some(Taken::Vacant(index))
        } else {
            None
        };
        match taken {
            Some(taken) => {
                // One slot came free, one waiter is served: any other free slot has a
                // returner (or an enqueuing waiter) of its own that serves the next one.
                let waiter = queue.pop().expect("queue is not empty");
                self.waiting.store(queue.len(), Ordering::Relaxed);
                let wake = waiter.grant(taken);
                drop(queue);
                wake.wake();
            }
            None => {
                // Someone took the slot first; serve from any other that is free.
                drop(queue);
                self.rescue();
            }
        }
    }

    /// Grants free slots to waiters, oldest first, while both remain. Each grant is made under
    /// the queue lock and its wake-up after unlocking.
    fn rescue(&self) {
        loop {
            let wake = {
                let mut queue = self.queue.lock();
                if queue.len() == 0 {
                    return;
                }
                let Some(taken) = Self::claim_any(&self.slots) else { return };
                let waiter = queue.pop().expect("queue is not empty");
                self.waiting.store(queue.len(), Ordering::Relaxed);
                waiter.grant(taken)
            };
            wake.wake();
        }
    }

    /// Queues `waiter`; it may have been granted a slot by the time this returns.
    pub(crate) fn enqueue(&self, waiter: &Arc<Waiter>) {
        let mut queue = self.queue.lock();
        queue.push(waiter.clone());
        self.waiting.store(queue.len(), Ordering::Relaxed);
        // Pairs with the `SeqCst` RMW in `Slot::release`: see "Returning" above.
        fence(Ordering::SeqCst);
        // Serve the oldest waiter from any slot that came free meanwhile (usually none: the
        // caller found none a moment ago).
        if let Some(taken) = Self::claim_any(&self.slots) {
            let oldest = queue.pop().expect("queue is not empty");
            self.waiting.store(queue.len(), Ordering::Relaxed);
            let wake = oldest.grant(taken);
            drop(queue);
            wake.wake();
            self.rescue();
        } else {
            drop(queue);
            // Every slot is busy while a caller waits: in use is at its maximum.
            self.counters.peak_in_use.fetch_max(self.slots.len(), Ordering::Relaxed);
        }
    }

    /// Takes `waiter` out of the queue. Returns the slot it was granted meanwhile, if any,
    /// which the caller now owns.
    pub(crate) fn cancel(&self, waiter: &Arc<Waiter>) -> Option<Taken> {
        let mut queue = self.queue.lock();
        if queue.remove(waiter) {
            self.waiting.store(queue.len(), Ordering::Relaxed);
            return None;
        }
        drop(queue);
        let granted = waiter.granted();
        debug_assert!(granted.is_some(), "a waiter left the queue without a grant");
        granted
    }

    /// Records a finished wait.
    pub(crate) fn record_wait(&self, since: Instant) {
        let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        bump(&self.counters.waits);
        self.counters.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Takes a slot, waiting on the current thread until `deadline` if need be.
    pub(crate) fn acquire_blocking(&self, deadline: Option<Instant>) -> Result<usize, GetError> {
        if let Some(taken) = self.take_fast(&self.slots) {
            return self.fill(taken).map_err(GetError::Create);
        }
        let since = Instant::now();
        let waiter = Waiter::new();
        waiter.register_thread(sync::current_thread());
        self.enqueue(&waiter);
        let taken = loop {
            if let Some(taken) = waiter.granted() {
                break taken;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                match self.cancel(&waiter) {
                    Some(taken) => break taken,
                    None => {
                        bump(&self.counters.timeouts);
                        return Err(GetError::Timeout { waited: since.elapsed() });
                    }
                }
            }
            sync::park(deadline);
        };
        self.record_wait(since);
        self.fill(taken).map_err(GetError::Create)
    }

    /// Updates the in-use high-water mark from the slot states.
    fn observe_in_use(&self) {
        let in_use = self.count(BUSY);
        self.counters.peak_in_use.fetch_max(in_use, Ordering::Relaxed);
    }

    fn count(&self, state: u64) -> usize {
        self.slots.iter().filter(|slot| slot.state() == state).count()
    }

    /// A snapshot of the pool's counters.
    pub(crate) fn stats(&self) -> Stats {
        // One pass, each slot read once, so that idle + in use never exceeds max_size even
        // while slots change state under the scan.
        let (mut idle, mut in_use) = (0, 0);
        for slot in self.slots.iter() {
            match slot.state() {
                IDLE => idle += 1,
                BUSY => in_use += 1,
                _ => {}
            }
        }
        self.counters.peak_in_use.fetch_max(in_use, Ordering::Relaxed);
        let c = &*self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            max_size: self.slots.len(),
            idle,
            in_use,
            waiting: self.waiting.load(Ordering::Relaxed),
            created: load(&c.created),
            reused: self.slots.iter().map(|slot| slot.reuses()).sum(),
            discarded: load(&c.discarded),
            detached: load(&c.detached),
            create_errors: load(&c.create_errors),
            reset_panics: load(&c.reset_panics),
            peak_in_use: c.peak_in_use.load(Ordering::Relaxed),
            waits: load(&c.waits),
            total_wait: Duration::from_nanos(load(&c.wait_nanos)),
            timeouts: load(&c.timeouts),
        }
    }
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("max_size", &self.slots.len())
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
