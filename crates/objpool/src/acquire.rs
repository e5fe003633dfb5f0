//! The future of an async get.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::create::Creating;
use crate::error::GetError;
use crate::guard::Guard;
use crate::pool::Pool;
use crate::slot::Taken;
use crate::sync::Arc;
use crate::waiter::{Grant, Waiter};

/// The future returned by [`Pool::get_async`]: resolves to a [`Guard`] once an object is free.
///
/// Waiters are served in the order they started waiting. With an async creator
/// ([`Builder::build_async`](crate::Builder::build_async)) this future also polls the creation
/// of a new object, so the creation runs in the caller's task and nowhere else.
///
/// The future is cancel-safe: dropping it at any point loses nothing. An object granted to it
/// meanwhile passes to the next waiter; a creation in progress is dropped and its slot freed.
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
}

impl<'a, T> Acquire<'a, T> {
    pub(crate) fn new(pool: &'a Pool<T>) -> Self {
        Self { pool, waiter: None, since: None, creating: None }
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
        if let Taken::Vacant(index) = taken {
            if shared.creates_async() {
                this.creating = Some((index, shared.start_creation(index)?));
                return this.poll_creation(cx);
            }
        }
        let index = shared.fill(taken)?;
        // SAFETY: `fill` made the slot ours and put an object in it.
        Poll::Ready(Ok(unsafe { Guard::new(this.pool, index) }))
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
    }
}

impl<T> std::fmt::Debug for Acquire<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire")
            .field("queued", &self.waiter.is_some())
            .field("creating", &self.creating.is_some())
            .finish()
    }
}
