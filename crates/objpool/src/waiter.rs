//! A caller waiting for an object, and the FIFO queue of them.

use std::collections::VecDeque;
use std::task::Waker;

use crate::slot::Taken;
use crate::sync::{Arc, AtomicUsize, Mutex, Ordering, Thread};

const NO_GRANT: usize = usize::MAX;
/// The grant of a waiter woken because the pool closed: no slot.
const CLOSED: usize = usize::MAX - 1;

/// What a waiter was given: a slot, or the news that the pool closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    Slot(Taken),
    Closed,
}

/// How a waiter is woken.
#[derive(Debug)]
enum Notify {
    Task(Waker),
    Thread(Thread),
}

/// One waiting caller, shared between it and the queue.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// The slot granted to this waiter, encoded by [`encode`]; `NO_GRANT` until then. Written
    /// once, under the queue lock, as the waiter leaves the queue.
    grant: AtomicUsize,
    /// How to wake the waiter. Whoever grants sets `grant` first and then takes this, and the
    /// waiter stores it first and then reads `grant`; the mutex orders the two, so a wake-up
    /// is never lost.
    notify: Mutex<Option<Notify>>,
}

fn encode(grant: Grant) -> usize {
    // Slot indices are below `isize::MAX / 128` (each slot is a cache line), so an encoded
    // slot never meets the two reserved values.
    match grant {
        Grant::Slot(Taken::Object(index)) => index << 1 | 1,
        Grant::Slot(Taken::Vacant(index)) => index << 1,
        Grant::Closed => CLOSED,
    }
}

fn decode(grant: usize) -> Option<Grant> {
    match grant {
        NO_GRANT => None,
        CLOSED => Some(Grant::Closed),
        grant if grant & 1 == 1 => Some(Grant::Slot(Taken::Object(grant >> 1))),
        grant => Some(Grant::Slot(Taken::Vacant(grant >> 1))),
    }
}

impl Waiter {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self { grant: AtomicUsize::new(NO_GRANT), notify: Mutex::new(None) })
    }

    /// What was granted to this waiter, if anything yet.
    pub(crate) fn granted(&self) -> Option<Grant> {
        decode(self.grant.load(Ordering::Acquire))
    }

    /// Records the task to wake, then checks for a grant that came meanwhile.
    pub(crate) fn register_task(&self, waker: &Waker) -> Option<Grant> {
        {
            let mut notify = self.notify.lock();
            match &*notify {
                Some(Notify::Task(old)) if old.will_wake(waker) => {}
                _ => *notify = Some(Notify::Task(waker.clone())),
            }
        }
        self.granted()
    }

    /// Records the thread to unpark. Called before the waiter is queued.
    pub(crate) fn register_thread(&self, thread: Thread) {
        *self.notify.lock() = Some(Notify::Thread(thread));
    }

    /// Gives `grant` to this waiter. Called under the queue lock, as the waiter is removed
    /// from the queue; the caller wakes the waiter with the returned [`Wake`] after unlocking,
    /// so that the lock is not held across a wake-up (which may cost a syscall).
    #[must_use = "the waiter sleeps until woken"]
    pub(crate) fn grant(&self, grant: Grant) -> Wake {
        debug_assert_eq!(self.grant.load(Ordering::Relaxed), NO_GRANT, "granted twice");
        self.grant.store(encode(grant), Ordering::Release);
        Wake(self.notify.lock().take())
    }
}

/// A pending wake-up of a granted waiter.
#[derive(Debug)]
pub(crate) struct Wake(Option<Notify>);

impl Wake {
    pub(crate) fn wake(self) {
        match self.0 {
            Some(Notify::Task(waker)) => waker.wake(),
            Some(Notify::Thread(thread)) => thread.unpark(),
            None => {}
        }
    }
}

/// The waiters, oldest first.
#[derive(Debug, Default)]
pub(crate) struct WaitQueue {
    waiters: VecDeque<Arc<Waiter>>,
}

impl WaitQueue {
    pub(crate) fn len(&self) -> usize {
        self.waiters.len()
    }

    pub(crate) fn push(&mut self, waiter: Arc<Waiter>) {
        self.waiters.push_back(waiter);
    }

    pub(crate) fn pop(&mut self) -> Option<Arc<Waiter>> {
        self.waiters.pop_front()
    }

    /// Takes every waiter out, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Arc<Waiter>> + '_ {
        self.waiters.drain(..)
    }

    /// Removes `waiter` if it is still queued; `false` means it was granted a slot already.
    pub(crate) fn remove(&mut self, waiter: &Arc<Waiter>) -> bool {
        match self.waiters.iter().position(|queued| Arc::ptr_eq(queued, waiter)) {
            Some(position) => {
                self.waiters.remove(position);
                true
            }
            None => false,
        }
    }
}
