//! Loader coalescing: one "flight" per key being loaded, which late callers wait on, and the
//! guard of the caller that leads it.
//!
//! # Implementation details
//!
//! A shard keeps a table of its keys' flights under the shard lock. A caller that misses either
//! finds a flight (and waits on it) or registers one (and becomes its leader) in the same
//! critical section as the lookup, so two callers can never both lead. The leader runs the loader
//! with no lock held. It then, under the shard lock, removes the flight and stores the value
//! together, so a later caller sees either the flight or the value; and last it publishes the
//! outcome to the flight's waiters (a condition variable for blocking callers, wakers for async
//! ones).
//!
//! **An invalidation wins over a load in flight.** `remove`, `insert` of the same key,
//! `invalidate_if`, `clear` and a shrinking `set_budget` *detach* the flights they may make stale:
//! they take them out of the shard's table (under the lock, so the order against the leader's
//! store is decided there) and mark them. A detached leader finds its flight gone when it comes to
//! store and stores nothing; it still publishes its value to the callers that were waiting for it,
//! who asked before the invalidation. A caller arriving after the invalidation finds no flight
//! and starts its own load, so it can never receive the stale value.
//!
//! **The leader is a guard** ([`Lead`]). If the loader panics, or the leader's future is dropped,
//! the guard's `Drop` removes the flight and publishes [`Outcome::Abandoned`]; the waiters then
//! start over, and one of them becomes the new leader. A loader error is published to the waiters
//! that share the error type and is never cached.
//!
//! **A loader that waits for its own key** would wait forever. While a loader runs (sync) or is
//! being polled (async), its flight is on a thread-local stack ([`Loading`]); a caller about to
//! wait on a flight that is on its own thread's stack is that loader, or a loader it runs, asking
//! for the key, and fails with [`LoadError::Recursive`](crate::LoadError) instead. Other callers
//! that merely share the thread (a task polled between two polls of the leader) are not on the
//! stack and wait normally. A loader that hands the request to another task and awaits it cannot
//! be told apart and still deadlocks; the method docs say so.
//!
//! **An async waiter that is dropped** (a timeout, a client gone) takes its waker out of the
//! flight, so a long load does not collect the wakers of every caller that gave up.
//!
//! The loom models in `tests/loom.rs` check the hand-off (every waiter returns, with the leader's
//! value or after an abandonment, whatever the interleaving), waker deregistration, and an
//! invalidation racing a load through the whole cache.

// `Flight`, `Outcome` and `Wait` are public (and hidden) for the loom models only.
#![allow(unreachable_pub)]

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::task::{Context, Poll, Waker};

use crate::cache::Inner;
use crate::error::{InsertErrorKind, LoadError};
use crate::sync::{AtomicBool, Condvar, Mutex, thread_local};
use crate::weigh::Weigher;

/// A loader's error, shared by the leader and every waiter.
pub type SharedError = Arc<dyn Any + Send + Sync>;

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
    /// Async waiters' wakers, each under the id its [`Wait`] future holds.
    Running {
        wakers: Vec<(u64, Waker)>,
        next_id: u64,
    },
    Finished(Outcome<V>),
}

/// One load in progress.
pub struct Flight<V> {
    state: Mutex<State<V>>,
    cond: Condvar,
    /// Set (under the shard lock) when an invalidation took the flight out of its shard's table.
    detached: AtomicBool,
}

impl<V> std::fmt::Debug for Flight<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight").field("detached", &self.is_detached()).finish_non_exhaustive()
    }
}

impl<V> Flight<V> {
    /// A flight in progress.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::Running { wakers: Vec::new(), next_id: 0 }),
            cond: Condvar::new(),
            detached: AtomicBool::new(false),
        }
    }

    /// Marks the flight as invalidated: its leader will not store its value.
    pub(crate) fn detach(&self) {
        self.detached.store(true, Release);
    }

    /// Whether an invalidation detached the flight. Only a hint outside the shard lock (the
    /// leader's store decides under the lock); it lets a detached leader skip making room.
    pub fn is_detached(&self) -> bool {
        self.detached.load(Acquire)
    }

    /// Wakers of async waiters still registered (for the loom models).
    #[cfg_attr(not(bounded_cache_loom), allow(dead_code))]
    pub fn registered_wakers(&self) -> usize {
        match &*self.state.lock() {
            State::Running { wakers, .. } => wakers.len(),
            State::Finished(_) => 0,
        }
    }

    /// Takes an async waiter's waker out, when the waiter gives up.
    fn deregister(&self, id: u64) {
        if let State::Running { wakers, .. } = &mut *self.state.lock() {
            if let Some(i) = wakers.iter().position(|(w, _)| *w == id) {
                wakers.swap_remove(i);
            }
        }
    }
}

impl<V: Clone> Flight<V> {
    /// Publishes the outcome and wakes every waiter. Only the first call has an effect.
    pub fn finish(&self, outcome: Outcome<V>) {
        let wakers = {
            let mut state = self.state.lock();
            match std::mem::replace(&mut *state, State::Finished(outcome)) {
                State::Running { wakers, .. } => wakers,
                finished @ State::Finished(_) => {
                    *state = finished;
                    return;
                }
            }
        };
        // Woken with the flight's lock released.
        self.cond.notify_all();
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// Blocks until the flight ends.
    pub fn wait(&self) -> Outcome<V> {
        let mut state = self.state.lock();
        loop {
            match &*state {
                State::Finished(outcome) => return outcome.clone(),
                State::Running { .. } => state = self.cond.wait(state),
            }
        }
    }

    /// The end of the flight, as a future that deregisters its waker if dropped first.
    pub fn wait_async(&self) -> Wait<'_, V> {
        Wait { flight: self, id: None }
    }
}

impl<V> Default for Flight<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Awaits a flight's outcome; from [`Flight::wait_async`].
#[derive(Debug)]
pub struct Wait<'a, V> {
    flight: &'a Flight<V>,
    /// The id of this waiter's registered waker, once registered.
    id: Option<u64>,
}

impl<V: Clone> Future for Wait<'_, V> {
    type Output = Outcome<V>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<V>> {
        let this = &mut *self;
        let mut state = this.flight.state.lock();
        match &mut *state {
            State::Finished(outcome) => {
                // The flight took the waker out when it finished.
                this.id = None;
                Poll::Ready(outcome.clone())
            }
            State::Running { wakers, next_id } => {
                match this.id.and_then(|id| wakers.iter_mut().find(|(w, _)| *w == id)) {
                    Some((_, waker)) => {
                        if !waker.will_wake(cx.waker()) {
                            waker.clone_from(cx.waker());
                        }
                    }
                    None => {
                        let id = *next_id;
                        *next_id += 1;
                        wakers.push((id, cx.waker().clone()));
                        this.id = Some(id);
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<V> Drop for Wait<'_, V> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.flight.deregister(id);
        }
    }
}

thread_local! {
    // Not a `const` initialiser: loom's `thread_local!` has no such form.
    #[allow(clippy::missing_const_for_thread_local)]
    /// The flights whose loaders this thread is running or polling right now, innermost last
    /// (by address: a flight on the stack is alive, its leader holds it).
    static LOADING: RefCell<Vec<usize>> = RefCell::new(Vec::new());
}

/// Marks a flight as being loaded on this thread while it lives; see the module docs.
pub(crate) struct Loading {
    addr: usize,
}

impl Loading {
    pub(crate) fn enter<V>(flight: &Arc<Flight<V>>) -> Self {
        let addr = Arc::as_ptr(flight) as usize;
        LOADING.with(|stack| stack.borrow_mut().push(addr));
        Self { addr }
    }

    /// Whether `flight`'s loader is running (or being polled) on this thread, further up the stack.
    pub(crate) fn is_active<V>(flight: &Arc<Flight<V>>) -> bool {
        let addr = Arc::as_ptr(flight) as usize;
        LOADING.with(|stack| stack.borrow().contains(&addr))
    }
}

impl Drop for Loading {
    fn drop(&mut self) {
        LOADING.with(|stack| {
            let popped = stack.borrow_mut().pop();
            debug_assert_eq!(popped, Some(self.addr), "loads nest");
        });
    }
}

/// The leader of a load: stores the value (unless the flight was detached) and publishes the
/// outcome; abandons the flight if dropped before [`Lead::finish`].
pub(crate) struct Lead<'a, K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
    V: Clone,
{
    inner: &'a Inner<K, V, W, S>,
    hash: u64,
    flight: Arc<Flight<V>>,
    done: bool,
    /// A background reload (`refresh.rs`): its failures count as refresh failures.
    refresh: bool,
}

impl<'a, K, V, W, S> Lead<'a, K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
    V: Clone,
{
    pub(crate) fn new(inner: &'a Inner<K, V, W, S>, hash: u64, flight: Arc<Flight<V>>) -> Self {
        Self { inner, hash, flight, done: false, refresh: false }
    }

    /// The lead of a background reload of a present entry (`refresh.rs`).
    pub(crate) fn refresh(inner: &'a Inner<K, V, W, S>, hash: u64, flight: Arc<Flight<V>>) -> Self {
        Self { inner, hash, flight, done: false, refresh: true }
    }

    fn count_failure(&self) {
        let counters = &self.inner.counters;
        let counter = if self.refresh { &counters.refresh_failures } else { &counters.load_failures };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn flight(&self) -> &Arc<Flight<V>> {
        &self.flight
    }

    /// Stores a loaded value (unless the load was invalidated meanwhile, or it cannot fit) and
    /// publishes the outcome to the waiters.
    pub(crate) fn finish<E: Send + Sync + 'static>(
        mut self,
        key: K,
        result: Result<V, E>,
    ) -> Result<V, LoadError<E>> {
        let inner = self.inner;
        match result {
            Ok(value) => {
                if self.flight.is_detached() {
                    // Invalidated while loading: the waiters get the value, the cache does not.
                } else {
                    let weight = inner.weigh(&key, &value);
                    let stamp = inner.stamp(&key, &value, inner.ttl);
                    match inner.put(self.hash, key, value.clone(), weight, stamp, Some(&self.flight)) {
                        Ok(_) => {}
                        Err((_, _, kind)) => {
                            debug_assert!(matches!(
                                kind,
                                InsertErrorKind::TooHeavy | InsertErrorKind::Contended
                            ));
                            inner.counters.rejected.fetch_add(1, Relaxed);
                            self.unregister();
                        }
                    }
                }
                self.flight.finish(Outcome::Value(value.clone()));
                self.done = true;
                Ok(value)
            }
            Err(e) => {
                // A failed reload leaves the entry as it was: it keeps serving until it expires.
                self.count_failure();
                let e = Arc::new(e);
                self.unregister();
                self.flight.finish(Outcome::Failed(Arc::clone(&e) as SharedError));
                self.done = true;
                Err(LoadError::Failed(e))
            }
        }
    }

    fn unregister(&self) {
        self.inner.cell(self.hash).write().take_flight(self.hash, &self.flight);
    }

    /// Ends a compute that puts `value` (`compute.rs`): stores it unless an invalidation
    /// detached the flight, and publishes it to the waiters (loaders take it as theirs; other
    /// computes compute again on it).
    pub(crate) fn put(mut self, key: K, value: V) -> Put<K, V> {
        let inner = self.inner;
        if self.flight.is_detached() {
            self.end();
            return Put::Detached(value);
        }
        let weight = inner.weigh(&key, &value);
        let stamp = inner.stamp(&key, &value, inner.ttl);
        match inner.put(self.hash, key, value.clone(), weight, stamp, Some(&self.flight)) {
            Ok(true) => {
                self.flight.finish(Outcome::Value(value.clone()));
                self.done = true;
                Put::Stored(value)
            }
            Ok(false) => {
                self.end();
                Put::Detached(value)
            }
            Err((key, _, kind)) => {
                inner.counters.rejected.fetch_add(1, Relaxed);
                // As after a refused insert, no older value may stay: the key's entry goes, in
                // the same critical section as the flight (unless an invalidation came first:
                // then what it left is newer than this compute).
                let _ = self.remove(&key);
                Put::Rejected { key, value, weight, kind }
            }
        }
    }

    /// Ends a compute that removes the key's entry: `None` if an invalidation detached the
    /// flight first (nothing removed), else what was removed.
    pub(crate) fn remove(mut self, key: &K) -> Option<Option<V>> {
        let removed = {
            let mut shard = self.inner.cell(self.hash).write();
            if shard.take_flight(self.hash, &self.flight) { Some(shard.remove(self.hash, key)) } else { None }
        };
        self.flight.finish(Outcome::Abandoned);
        self.done = true;
        let removed = removed?;
        Some(removed.map(|r| {
            let value = r.value.clone();
            self.inner.release(r);
            value
        }))
    }

    /// Ends a compute that changes nothing, or whose put was invalidated: the flight leaves its
    /// table and its waiters start over (a loader loads, a compute computes on what is there).
    pub(crate) fn end(mut self) {
        self.unregister();
        self.flight.finish(Outcome::Abandoned);
        self.done = true;
    }
}

/// How a compute's put ended.
pub(crate) enum Put<K, V> {
    Stored(V),
    /// An invalidation came first: nothing was stored (the value comes back); compute again.
    Detached(V),
    /// Heavier than the budget, or starved of it.
    Rejected {
        key: K,
        value: V,
        weight: u64,
        kind: InsertErrorKind,
    },
}

impl<K, V, W, S> Drop for Lead<'_, K, V, W, S>
where
    K: Hash + Eq,
    W: Weigher<K, V>,
    S: BuildHasher,
    V: Clone,
{
    fn drop(&mut self) {
        // After a panic between storing the value and publishing it, this publishes `Abandoned`;
        // waiters then find the stored value.
        if !self.done {
            self.count_failure();
            self.unregister();
            self.flight.finish(Outcome::Abandoned);
        }
    }
}
