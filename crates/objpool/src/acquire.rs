//! The future of an async get.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::error::GetError;
use crate::guard::Guard;
use crate::pool::Pool;
use crate::sync::Arc;
use crate::waiter::Waiter;

/// The future returned by [`Pool::get_async`]: resolves to a [`Guard`] once an object is free.
///
/// Waiters are served in the order they started waiting. The future is cancel-safe: dropping
/// it at any point loses nothing, and an object granted to it meanwhile passes to the next
/// waiter. It has no timeout of its own; wrap it in your runtime's timeout
/// (`tokio::time::timeout`), which drops it when time is up.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a, T> {
    pool: &'a Pool<T>,
    /// Set while queued; `None` before queueing and after the grant was taken.
    waiter: Option<Arc<Waiter>>,
    since: Option<Instant>,
}

impl<'a, T> Acquire<'a, T> {
    pub(crate) fn new(pool: &'a Pool<T>) -> Self {
        Self { pool, waiter: None, since: None }
    }
}

impl<'a, T> Future for Acquire<'a, T> {
    type Output = Result<Guard<'a, T>, GetError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `Acquire` holds no self-references, so it is `Unpin`.
        let this = self.get_mut();
        let shared = this.pool.shared();
        let taken = match &this.waiter {
            None => match shared.take_fast(this.pool.slots()) {
                Some(taken) => taken,
                None => {
                    let waiter = Waiter::new();
                    waiter.register_task(cx.waker());
                    shared.enqueue(&waiter);
                    match waiter.granted() {
                        // Served while queueing: no wait to time.
                        Some(taken) => taken,
                        None => {
                            this.since = Some(Instant::now());
                            this.waiter = Some(waiter);
                            return Poll::Pending;
                        }
                    }
                }
            },
            Some(waiter) => match waiter.granted().or_else(|| waiter.register_task(cx.waker())) {
                Some(taken) => taken,
                None => return Poll::Pending,
            },
        };
        if this.waiter.take().is_some() {
            if let Some(since) = this.since {
                shared.record_wait(since);
            }
        }
        let index = shared.fill(taken).map_err(GetError::Create)?;
        // SAFETY: `fill` made the slot ours and put an object in it.
        Poll::Ready(Ok(unsafe { Guard::new(this.pool, index) }))
    }
}

impl<T> Drop for Acquire<'_, T> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            let shared = self.pool.shared();
            if let Some(taken) = shared.cancel(&waiter) {
                shared.put_back(taken);
            }
        }
    }
}

impl<T> std::fmt::Debug for Acquire<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire").field("queued", &self.waiter.is_some()).finish()
    }
}
