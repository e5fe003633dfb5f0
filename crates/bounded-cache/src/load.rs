//! Loader coalescing: one "flight" per key being loaded, which late callers wait on.
//!
//! # Implementation details
//!
//! A shard keeps a table of its keys' flights under the shard lock. A caller that misses either
//! finds a flight (and waits on it) or registers one (and becomes its leader) in the same critical
//! section as the lookup, so two callers can never both lead. The leader runs the loader with no lock
//! held. It then, under the shard lock, stores the value and removes the flight together, so a later
//! caller sees either the flight or the value; and last it publishes the outcome to the flight's
//! waiters (a condition variable for blocking callers, wakers for async ones).
//!
//! The leader is represented by a guard. If the loader panics, or the leader's future is dropped,
//! the guard's `Drop` removes the flight and publishes [`Outcome::Abandoned`]; the waiters then start
//! over, and one of them becomes the new leader. A loader error is published to the waiters that
//! share the error type and is never cached.
//!
//! The loom models in `tests/loom.rs` check the flight's hand-off: every waiter returns, with the
//! leader's value or after an abandonment, whatever the interleaving.

// `Flight` is public (and hidden) for the loom models only.
#![allow(unreachable_pub)]

use std::any::Any;
use std::task::{Context, Poll, Waker};

use crate::sync::{Condvar, Mutex, ThreadId, current_thread};

/// A loader's error, shared by the leader and every waiter.
pub type SharedError = std::sync::Arc<dyn Any + Send + Sync>;

/// How a flight ended.
#[derive(Debug)]
pub enum Outcome<V> {
    /// The loader produced this value.
    Value(V),
    /// The loader failed with this error.
    Failed(SharedError),
    /// The loader panicked or was cancelled: start over.
    Abandoned,
}

impl<V: Clone> Clone for Outcome<V> {
    fn clone(&self) -> Self {
        match self {
            Outcome::Value(v) => Outcome::Value(v.clone()),
            Outcome::Failed(e) => Outcome::Failed(e.clone()),
            Outcome::Abandoned => Outcome::Abandoned,
        }
    }
}

enum State<V> {
    Running { wakers: Vec<Waker> },
    Finished(Outcome<V>),
}

/// One load in progress.
pub struct Flight<V> {
    state: Mutex<State<V>>,
    cond: Condvar,
    /// The thread that registered the flight, to turn a loader that waits on its own key into a panic
    /// instead of a deadlock.
    leader: ThreadId,
}

impl<V> std::fmt::Debug for Flight<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight").field("leader", &self.leader).finish_non_exhaustive()
    }
}

impl<V: Clone> Flight<V> {
    /// A flight led by the current thread.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::Running { wakers: Vec::new() }),
            cond: Condvar::new(),
            leader: current_thread().id(),
        }
    }

    /// Publishes the outcome and wakes every waiter. Only the first call has an effect.
    pub fn finish(&self, outcome: Outcome<V>) {
        let wakers = {
            let mut state = self.state.lock();
            match std::mem::replace(&mut *state, State::Finished(outcome)) {
                State::Running { wakers } => wakers,
                finished @ State::Finished(_) => {
                    *state = finished;
                    return;
                }
            }
        };
        self.cond.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Blocks until the flight ends.
    ///
    /// # Panics
    /// If called on the thread that leads the flight, which would wait forever.
    pub fn wait(&self) -> Outcome<V> {
        let mut state = self.state.lock();
        loop {
            match &*state {
                State::Finished(outcome) => return outcome.clone(),
                State::Running { .. } => {
                    assert!(
                        current_thread().id() != self.leader,
                        "bounded-cache: a loader waited for its own key, which would deadlock"
                    );
                    state = self.cond.wait(state);
                }
            }
        }
    }

    /// Polls for the end of the flight, registering the task's waker.
    pub fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<Outcome<V>> {
        let mut state = self.state.lock();
        match &mut *state {
            State::Finished(outcome) => Poll::Ready(outcome.clone()),
            State::Running { wakers } => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl<V: Clone> Default for Flight<V> {
    fn default() -> Self {
        Self::new()
    }
}
