//! The pool's state machine: idle connections, FIFO waiters, and the accounting that bounds
//! the number of connections. No I/O and no timers: the async layer (`pool.rs`) performs what
//! these transitions ask for (connect, close, validate), which keeps this part small enough
//! for loom to check every interleaving (`tests/loom.rs`).
//!
//! # Implementation details
//!
//! One mutex guards the whole state; every transition is a short critical section with no
//! allocation on the checkout and return paths (the queues keep their capacity).
//!
//! **Accounting.** `open` counts every connection that exists: idle, checked out, or taken
//! out for a health check. `connecting` counts connection attempts in flight. A new attempt is
//! started only while `open + connecting < max_size`, so the pool never exceeds `max_size`.
//!
//! **Waiters.** A checkout that finds no idle connection joins a FIFO queue. A returned or
//! newly made connection goes to the oldest waiter directly (a *grant*), never through the idle
//! set, so a newcomer cannot overtake a waiter. A waiter that gives up (timeout, dropped future)
//! removes itself under the lock; if it was granted a connection meanwhile it gets it back and
//! passes it on, so no connection and no slot is lost.
//!
//! **Closed means closed.** Once `close` ran, no transition asks for a connection attempt,
//! whichever path ends a connection or an attempt (`connects_needed` answers 0), and every
//! connection that comes back or is made leaves the count to be closed. The async layer waits
//! for `open` and `connecting` both to reach 0.
//!
//! **Health checks** take a bounded batch (see [`Stale::check`]): a round never empties the
//! idle set, so checkouts keep being served while it runs.
//!
//! **Bursts.** Attempts are started only for waiters not already covered by an attempt in
//! flight (`waiters > connecting`), and at most `max_connecting` at a time. Under a burst the
//! returning connections serve most waiters while the first new connections are still being
//! made, so the pool grows by what the burst needs rather than by the burst's size (the
//! HikariCP pool-sizing behaviour; `tests/burst.rs`).

// The items are `pub` so that `--cfg connpool_loom` can re-export them to the loom models; the
// module itself is private, so nothing here is public API.
#![allow(unreachable_pub)]
#![cfg_attr(connpool_loom, allow(missing_docs))]

use std::collections::VecDeque;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use crate::sync::{Arc, Mutex};

/// A connection with the pool's bookkeeping.
#[derive(Debug)]
pub struct Pooled<C> {
    pub(crate) conn: C,
    pub(crate) id: u64,
    pub(crate) created: Instant,
    /// When the connection's (jittered) lifetime ends.
    pub(crate) expires: Option<Instant>,
    /// When it was last returned (or made).
    pub(crate) last_used: Instant,
    /// When it was last validated (or made).
    pub(crate) last_checked: Instant,
    /// When its next health check is due (jittered per connection), if health checks are on.
    pub(crate) next_check: Option<Instant>,
}

impl<C> Pooled<C> {
    /// A connection with fresh bookkeeping, for the loom models.
    #[cfg(connpool_loom)]
    pub fn new_for_test(conn: C) -> Self {
        let now = Instant::now();
        Self { conn, id: 0, created: now, expires: None, last_used: now, last_checked: now, next_check: None }
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|expires| now >= expires)
    }
}

/// What a waiter receives.
#[derive(Debug)]
pub enum Grant<C, E> {
    Conn(Pooled<C>),
    Error(StdArc<E>),
    Closed,
    /// The waiter's deadline passed (see [`Core::expire`]).
    TimedOut,
}

#[derive(Debug)]
struct WaiterState<C, E> {
    grant: Option<Grant<C, E>>,
    waker: Option<Waker>,
}

/// A checkout waiting in the queue.
#[derive(Debug)]
pub struct Waiter<C, E> {
    state: Mutex<WaiterState<C, E>>,
    /// When the waiter gives up (`None`: never); `Core::expire` grants it `TimedOut` then.
    deadline: Option<Instant>,
}

impl<C, E> Waiter<C, E> {
    fn new(deadline: Option<Instant>) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(WaiterState { grant: None, waker: None }), deadline })
    }

    /// Gives `grant` to the waiter. Called under the core's lock; the caller wakes the waiter
    /// with the returned waker after unlocking, so the lock is never held across a wake-up.
    #[must_use = "the waiter sleeps until woken"]
    fn grant(&self, grant: Grant<C, E>) -> Option<Waker> {
        let mut state = self.state.lock();
        debug_assert!(state.grant.is_none(), "granted twice");
        state.grant = Some(grant);
        state.waker.take()
    }

    /// Resolves once granted.
    pub fn poll_grant(&self, cx: &mut Context<'_>) -> Poll<Grant<C, E>> {
        let mut state = self.state.lock();
        if let Some(grant) = state.grant.take() {
            return Poll::Ready(grant);
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn take_grant(&self) -> Option<Grant<C, E>> {
        self.state.lock().grant.take()
    }
}

/// An idle connection.
#[derive(Debug)]
struct Idle<C> {
    conn: Pooled<C>,
}

#[derive(Debug)]
struct State<C, E> {
    /// Most recently returned first: busy pools reuse warm connections, and the ones at the
    /// back stay idle long enough to be evicted.
    idle: VecDeque<Idle<C>>,
    waiters: VecDeque<Arc<Waiter<C, E>>>,
    open: usize,
    connecting: usize,
    /// Connections taken out of the idle set for a health check.
    validating: usize,
    min_size: usize,
    max_size: usize,
    max_connecting: usize,
    fail_fast: bool,
    closed: bool,
    last_error: Option<StdArc<E>>,
    /// When the deadline timer will next run `expire`: at or before the earliest waiter's
    /// deadline (waiters that leave early can leave it early, which only costs a wasted wake).
    timer_at: Option<Instant>,
}

/// The outcome of [`Core::checkout`].
#[derive(Debug)]
pub enum Checkout<C, E> {
    /// An idle connection, now checked out.
    Ready(Pooled<C>),
    /// Wait for a grant; start `connect` new connection attempts first.
    Wait {
        waiter: Arc<Waiter<C, E>>,
        connect: usize,
        /// The new waiter's deadline is the earliest of all: the deadline timer must be told.
        earliest: bool,
    },
    /// The pool is closed.
    Closed,
}

/// What the async layer must do after a transition: close a connection the pool no longer
/// keeps, and start connection attempts.
#[derive(Debug)]
#[must_use = "a connection to close or attempts to start would be lost"]
pub struct Followup<C> {
    /// A connection that left the count: close it.
    pub close: Option<Pooled<C>>,
    /// Connection attempts reserved in `connecting`: start them. Always 0 once closed.
    pub connect: usize,
}

impl<C> Followup<C> {
    fn connect(connect: usize) -> Self {
        Self { close: None, connect }
    }
}

/// The outcome of [`Core::resize`].
#[derive(Debug)]
#[must_use = "connections to close or attempts to start would be lost"]
pub struct Resized<C> {
    /// Idle connections above the new maximum: close them.
    pub close: Vec<Pooled<C>>,
    /// Connection attempts to start.
    pub connect: usize,
}

/// A consistent view of the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub open: usize,
    pub idle: usize,
    pub connecting: usize,
    pub validating: usize,
    pub waiting: usize,
    pub min_size: usize,
    pub max_size: usize,
    pub closed: bool,
}

/// Connections that maintenance took out of the idle set.
#[derive(Debug)]
pub struct Stale<C> {
    /// Past their lifetime: close.
    pub(crate) expired: Vec<Pooled<C>>,
    /// Idle too long, above `min_size`: close.
    pub(crate) idle_timeout: Vec<Pooled<C>>,
    /// Due a health check: validate, then give back with [`Core::checked`]. At most a quarter of
    /// the idle connections (at least one), the most overdue first, and none while checkouts
    /// wait, so that a round never empties the idle set under load.
    pub(crate) check: Vec<Pooled<C>>,
}

/// The state machine.
#[derive(Debug)]
pub struct Core<C, E> {
    state: Mutex<State<C, E>>,
}

/// Sizes and switches the core needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub min_size: usize,
    pub max_size: usize,
    pub max_connecting: usize,
    pub fail_fast: bool,
}

impl<C, E> Core<C, E> {
    pub fn new(limits: Limits) -> Self {
        Self {
            state: Mutex::new(State {
                idle: VecDeque::with_capacity(limits.max_size),
                waiters: VecDeque::new(),
                open: 0,
                connecting: 0,
                validating: 0,
                min_size: limits.min_size,
                max_size: limits.max_size,
                max_connecting: limits.max_connecting,
                fail_fast: limits.fail_fast,
                closed: false,
                last_error: None,
                timer_at: None,
            }),
        }
    }

    /// Takes an idle connection, or queues the caller.
    /// `deadline` is called only if the caller must wait (the fast path reads no clock); `None`
    /// waits without a limit.
    pub fn checkout(&self, deadline: impl FnOnce() -> Option<Instant>) -> Checkout<C, E> {
        let mut state = self.state.lock();
        if state.closed {
            return Checkout::Closed;
        }
        // Waiters come first: a newcomer may only take an idle connection if none wait.
        if state.waiters.is_empty() {
            if let Some(Idle { conn }) = state.idle.pop_front() {
                return Checkout::Ready(conn);
            }
        }
        let deadline = deadline();
        // The deadline timer sleeps until `timer_at`; wake it only for an earlier deadline.
        let earliest = deadline.is_some_and(|at| state.timer_at.is_none_or(|timer_at| at < timer_at));
        if earliest {
            state.timer_at = deadline;
        }
        let waiter = Waiter::new(deadline);
        state.waiters.push_back(waiter.clone());
        let connect = state.connects_needed();
        Checkout::Wait { waiter, connect, earliest }
    }

    /// Grants `TimedOut` to every waiter whose deadline is at or before `now`, and returns the
    /// earliest deadline of those left. One timer per pool, sleeping until that deadline, serves
    /// every waiter: arming a timer per waiting checkout costs more than the rest of a checkout.
    pub fn expire(&self, now: Instant) -> Option<Instant> {
        let mut state = self.state.lock();
        let mut wakers = Vec::new();
        state.waiters.retain(|waiter| {
            if waiter.deadline.is_none_or(|deadline| deadline > now) {
                return true;
            }
            wakers.extend(waiter.grant(Grant::TimedOut));
            false
        });
        let next = state.waiters.iter().filter_map(|waiter| waiter.deadline).min();
        state.timer_at = next;
        drop(state);
        wake_all(wakers);
        next
    }

    /// Gives a checked-out connection back: to the oldest waiter, or to the idle set. If the
    /// pool is closed or over its size, the connection leaves the count and must be closed.
    pub fn put_back(&self, conn: Pooled<C>) -> Followup<C> {
        let mut state = self.state.lock();
        if state.closed || state.open > state.max_size {
            state.open -= 1;
            let connect = state.connects_needed();
            return Followup { close: Some(conn), connect };
        }
        let wake = state.give(conn);
        drop(state);
        wake_all(wake);
        Followup::connect(0)
    }

    /// A checked-out connection was closed (broken, expired, failed validation, detached).
    pub fn closed_one(&self) -> Followup<C> {
        let mut state = self.state.lock();
        state.open -= 1;
        Followup::connect(state.connects_needed())
    }

    /// A connection attempt succeeded. If the pool was closed meanwhile the connection must be
    /// closed instead.
    pub fn connected(&self, conn: Pooled<C>) -> Followup<C> {
        let mut state = self.state.lock();
        state.connecting -= 1;
        if state.closed {
            return Followup { close: Some(conn), connect: 0 };
        }
        state.open += 1;
        state.last_error = None;
        let wake = state.give(conn);
        let connect = state.connects_needed();
        drop(state);
        wake_all(wake);
        Followup::connect(connect)
    }

    /// A connection attempt failed for good: records the error and, with `fail_fast`, fails
    /// the oldest waiter with it. The attempt keeps its place in `connecting` until
    /// [`connect_released`](Self::connect_released), so that the async layer can pause before
    /// the next attempt instead of hammering a backend that is down.
    pub fn connect_failed(&self, error: StdArc<E>) {
        let mut state = self.state.lock();
        state.last_error = Some(error.clone());
        let wake = match state.waiters.pop_front() {
            Some(waiter) if state.fail_fast => waiter.grant(Grant::Error(error)),
            Some(waiter) => {
                state.waiters.push_front(waiter);
                None
            }
            None => None,
        };
        drop(state);
        wake_all(wake);
    }

    /// Ends an attempt that made no connection: after a failed attempt's pause, or when an
    /// attempt was cancelled (the pool shut down) or its task panicked.
    pub fn connect_released(&self) -> Followup<C> {
        let mut state = self.state.lock();
        state.connecting -= 1;
        Followup::connect(state.connects_needed())
    }

    /// Removes a waiter that gives up. Returns what it was granted meanwhile, if anything; the
    /// caller owns that now (a connection must be used or put back).
    pub fn cancel(&self, waiter: &Arc<Waiter<C, E>>) -> Option<Grant<C, E>> {
        let mut state = self.state.lock();
        if let Some(position) = state.waiters.iter().position(|queued| Arc::ptr_eq(queued, waiter)) {
            state.waiters.remove(position);
            return None;
        }
        drop(state);
        waiter.take_grant()
    }

    /// Closes the pool: waiters get `Closed`, idle connections are returned for closing, and
    /// connections still checked out are closed when they come back.
    pub fn close(&self) -> Vec<Pooled<C>> {
        let mut state = self.state.lock();
        state.closed = true;
        let wakers: Vec<_> =
            state.waiters.drain(..).filter_map(|waiter| waiter.grant(Grant::Closed)).collect();
        let idle: Vec<_> = state.idle.drain(..).map(|idle| idle.conn).collect();
        state.open -= idle.len();
        drop(state);
        wake_all(wakers);
        idle
    }

    /// Changes the sizes: idle connections above the new maximum are handed back to close,
    /// attempts are reserved below the new minimum or for waiters.
    pub fn resize(&self, min_size: usize, max_size: usize) -> Resized<C> {
        let mut state = self.state.lock();
        state.min_size = min_size;
        state.max_size = max_size;
        let mut close = Vec::new();
        while state.open > max_size {
            let Some(Idle { conn }) = state.idle.pop_back() else { break };
            state.open -= 1;
            close.push(conn);
        }
        let connect = state.connects_needed();
        Resized { close, connect }
    }

    /// Takes out of the idle set what maintenance must act on: expired connections, those idle
    /// past `idle_timeout` above `min_size`, and a bounded batch of those due a health check
    /// (see [`Stale::check`]).
    pub fn take_stale(&self, now: Instant, idle_timeout: Option<Duration>) -> Stale<C> {
        let mut state = self.state.lock();
        let mut stale = Stale { expired: Vec::new(), idle_timeout: Vec::new(), check: Vec::new() };
        if state.closed {
            return stale;
        }
        let mut kept = VecDeque::with_capacity(state.idle.len());
        // Oldest-returned last: walk from the back so eviction takes the longest idle first.
        while let Some(Idle { conn }) = state.idle.pop_back() {
            if conn.expired(now) {
                state.open -= 1;
                stale.expired.push(conn);
            } else if idle_timeout.is_some_and(|timeout| now.duration_since(conn.last_used) >= timeout)
                && state.open > state.min_size
            {
                state.open -= 1;
                stale.idle_timeout.push(conn);
            } else {
                kept.push_front(Idle { conn });
            }
        }
        state.idle = kept;
        if state.waiters.is_empty() {
            let batch = (state.idle.len() / 4).max(1);
            let mut due: Vec<(Instant, usize)> = (state.idle.iter().enumerate())
                .filter_map(|(i, idle)| idle.conn.next_check.filter(|&at| at <= now).map(|at| (at, i)))
                .collect();
            due.sort_unstable();
            due.truncate(batch);
            // Remove from the highest index down, so that the lower indices stay valid.
            let mut indices: Vec<usize> = due.into_iter().map(|(_, i)| i).collect();
            indices.sort_unstable_by(|a, b| b.cmp(a));
            for i in indices {
                let Idle { conn } = state.idle.remove(i).expect("an index of the idle set");
                state.validating += 1;
                stale.check.push(conn);
            }
        }
        stale
    }

    /// A connection taken out by `take_stale` passed its health check (`Some`), or failed it or
    /// its check was abandoned (`None`; the caller closes it).
    pub fn checked(&self, conn: Option<Pooled<C>>) -> Followup<C> {
        let mut state = self.state.lock();
        state.validating -= 1;
        match conn {
            Some(conn) if !state.closed && state.open <= state.max_size => {
                let wake = state.give(conn);
                drop(state);
                wake_all(wake);
                Followup::connect(0)
            }
            Some(conn) => {
                state.open -= 1;
                Followup { close: Some(conn), connect: 0 }
            }
            None => {
                state.open -= 1;
                Followup::connect(state.connects_needed())
            }
        }
    }

    /// Connection attempts to start now (to reach `min_size`, or for waiters).
    pub fn replenish(&self) -> usize {
        self.state.lock().connects_needed()
    }

    /// Reserves `n` attempts outside the throttle, for warming the pool up at build time.
    pub fn reserve_connects(&self, n: usize) -> usize {
        let mut state = self.state.lock();
        let room = state.max_size - state.open - state.connecting;
        let n = n.min(room);
        state.connecting += n;
        n
    }

    pub fn last_error(&self) -> Option<StdArc<E>> {
        self.state.lock().last_error.clone()
    }

    pub fn counts(&self) -> Counts {
        let state = self.state.lock();
        Counts {
            open: state.open,
            idle: state.idle.len(),
            connecting: state.connecting,
            validating: state.validating,
            waiting: state.waiters.len(),
            min_size: state.min_size,
            max_size: state.max_size,
            closed: state.closed,
        }
    }
}

impl<C, E> State<C, E> {
    /// Hands a connection to the oldest waiter (returning its waker, to wake once the lock is
    /// released), or makes it idle.
    #[must_use = "a granted waiter sleeps until woken"]
    fn give(&mut self, conn: Pooled<C>) -> Option<Waker> {
        match self.waiters.pop_front() {
            Some(waiter) => waiter.grant(Grant::Conn(conn)),
            None => {
                self.idle.push_front(Idle { conn });
                None
            }
        }
    }

    /// Reserves and returns the number of connection attempts to start now; none once closed,
    /// whichever transition asks.
    fn connects_needed(&mut self) -> usize {
        if self.closed {
            return 0;
        }
        let for_waiters = self.waiters.len().saturating_sub(self.connecting);
        let for_minimum = self.min_size.saturating_sub(self.open + self.connecting);
        let room = self.max_size.saturating_sub(self.open + self.connecting);
        let throttle = self.max_connecting.saturating_sub(self.connecting);
        let n = for_waiters.max(for_minimum).min(room).min(throttle);
        self.connecting += n;
        n
    }
}

/// Wakes waiters granted under the lock, after it was released.
fn wake_all(wakers: impl IntoIterator<Item = Waker>) {
    for waker in wakers {
        waker.wake();
    }
}
