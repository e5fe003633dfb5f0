//! The future of an async get.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::create::Creating;
use crate::error::GetError;
use crate::guard::Guard;
use crate::pool::Pool;
use crate::reset::Resetting;
use crate::slot::Taken;
use crate::sync::Arc;
use crate::waiter::{Grant, Waiter};

/// The future returned by [`Pool::get_async`]: resolves to a [`Guard`] once an object is free.
///
/// Waiters are served in the order they started waiting. With an async creator
/// ([`Builder::build_async`](crate::Builder::build_async)) this future also polls the creation
/// of a new object, and with an async reset ([`Builder::reset_async`](crate::Builder::reset_async))
/// the reset of a returned one, so both run in the caller's task and nowhere else.
///
/// The future is cancel-safe: dropping it at any point loses nothing. An object granted to it
/// meanwhile passes to the next waiter; a creation in progress is dropped and its slot freed;
/// an object whose async reset is interrupted is dropped (its state is unknown).
/// It has no timeout of its own; wrap it in your runtime's timeout (`tokio::time::timeout`),
/// which drops it when time is up.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a, T> {
    pool: &'a Pool<T>,
    /// Set while queued; `None` before queueing and after the grant was taken.
    waiter: Option<Arc<Waiter>>,
    since: Option<Instant>,
    /// An async creation in progress, and the slot it fills.
    creating: Option<(usize, Creating<T>)>,
    /// An async reset in progress, and the slot (owned by this future) of its object.
    resetting: Option<(usize, Resetting<'a>)>,
}

impl<'a, T> Acquire<'a, T> {
    pub(crate) fn new(pool: &'a Pool<T>) -> Self {
        Self { pool, waiter: None, since: None, creating: None, resetting: None }
    }

    /// Turns a taken slot into a guard: resets a returned object or creates a new one first,
    /// in this task, when the pool does that asynchronously.
    fn take(&mut self, taken: Taken, cx: &mut Context<'_>) -> Poll<Result<Guard<'a, T>, GetError>> {
        let shared = self.pool.shared();
        match taken {
            Taken::Object(index) if shared.due_reset(index) => {
                // SAFETY: the slot is ours, holding an object, and stays ours until the reset
                // is dropped (in `poll_reset` or in `drop`).
                match unsafe { shared.start_reset(index) } {
                    Ok(resetting) => {
                        self.resetting = Some((index, resetting));
                        self.poll_reset(cx)
                    }
                    Err(outcome) => self.take(shared.reset_done(index, outcome), cx),
                }
            }
            Taken::Vacant(index) if shared.creates_async() => {
                self.creating = Some((index, shared.start_creation(index)?));
                self.poll_creation(cx)
            }
            taken => {
                let index = shared.fill(taken)?;
                // SAFETY: `fill` made the slot ours and put an object in it.
                Poll::Ready(Ok(unsafe { Guard::new(self.pool, index) }))
            }
        }
    }

    /// Polls the reset in progress.
    fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<Result<Guard<'a, T>, GetError>> {
        let (index, resetting) = self.resetting.as_mut().expect("a reset is in progress");
        let outcome = std::task::ready!(resetting.poll(cx));
        let index = *index;
        self.resetting = None;
        let taken = self.pool.shared().reset_done(index, outcome);
        self.take(taken, cx)
    }

    /// Polls the creation in progress.
    fn poll_creation(&mut self, cx: &mut Context<'_>) -> Poll<Result<Guard<'a, T>, GetError>> {
        let (index, creating) = self.creating.as_mut().expect("a creation is in progress");
        let result = std::task::ready!(creating.poll(cx));
        let index = *index;
        self.creating = None;
        let shared = self.pool.shared();
        Poll::Ready(match result {
            Ok(value) => {
                shared.filled(index, value);
                shared.checked_out();
                // SAFETY: the slot is ours and `filled` put an object in it.
                Ok(unsafe { Guard::new(self.pool, index) })
            }
            Err(failure) => {
                shared.creation_failed(index);
                Err(failure.into())
            }
        })
    }
}

impl<'a, T> Future for Acquire<'a, T> {
    type Output = Result<Guard<'a, T>, GetError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `Acquire` holds no self-references (the creation future is boxed), so it is `Unpin`.
        let this = self.get_mut();
        if this.creating.is_some() {
            return this.poll_creation(cx);
        }
        if this.resetting.is_some() {
            return this.poll_reset(cx);
        }
        let shared = this.pool.shared();
        let grant = match &this.waiter {
            None => match shared.take_fast(this.pool.slots()) {
                Some(taken) => Grant::Slot(taken),
                None => {
                    let waiter = Waiter::new();
                    waiter.register_task(cx.waker());
                    shared.enqueue(&waiter);
                    match waiter.granted() {
                        // Served while queueing: no wait to time.
                        Some(grant) => grant,
                        None => {
                            this.since = Some(Instant::now());
                            this.waiter = Some(waiter);
                            return Poll::Pending;
                        }
                    }
                }
            },
            Some(waiter) => match waiter.granted().or_else(|| waiter.register_task(cx.waker())) {
                Some(grant) => grant,
                None => return Poll::Pending,
            },
        };
        this.waiter = None;
        let Grant::Slot(taken) = grant else { return Poll::Ready(Err(GetError::Closed)) };
        if let Some(since) = this.since.take() {
            shared.record_wait(since);
        }
        this.take(taken, cx)
    }
}

impl<T> Drop for Acquire<'_, T> {
    fn drop(&mut self) {
        let shared = self.pool.shared();
        if let Some(waiter) = self.waiter.take() {
            if let Some(grant) = shared.cancel(&waiter) {
                shared.forgo(grant);
            }
        }
        if let Some((index, creating)) = self.creating.take() {
            shared.abandon_creation(index, creating);
        }
        if let Some((index, resetting)) = self.resetting.take() {
            shared.abandon_reset(index, resetting);
        }
    }
}

impl<T> std::fmt::Debug for Acquire<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire")
            .field("queued", &self.waiter.is_some())
            .field("creating", &self.creating.is_some())
            .field("resetting", &self.resetting.is_some())
            .finish()
    }
}
