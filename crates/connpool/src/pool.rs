//! The public face: checking connections out, resizing and closing. The builder is in
//! `builder.rs`, the engine under it (attempts, closing, the deadline timer) in `engine.rs`, the
//! state machine in `core.rs`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::builder::Builder;
use crate::config::Config;
use crate::conn::Conn;
use crate::core::{Checkout, Grant, Waiter};
use crate::engine::{Handle, Inner};
use crate::error::{CloseError, ConnectError, PoolError};
use crate::hooks::HookStage;
use crate::manager::Manager;
use crate::metrics::{Counters, Metrics, Reason, Status};

type WaiterOf<M> = Waiter<<M as Manager>::Connection, ConnectError<<M as Manager>::Error>>;
type GrantOf<M> = Grant<<M as Manager>::Connection, ConnectError<<M as Manager>::Error>>;

/// A pool of connections made by a [`Manager`].
///
/// Cloning gives another handle to the same pool. Build one with [`Pool::builder`]; it needs a
/// tokio runtime, for its connection attempts and its background maintenance. Dropping the last
/// handle closes the pool: idle connections close at once, checked-out ones when they come back,
/// and every background task and connection attempt stops.
pub struct Pool<M: Manager> {
    handle: Arc<Handle<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self { handle: Arc::clone(&self.handle) }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("status", &self.status()).finish_non_exhaustive()
    }
}

impl<M: Manager> Pool<M> {
    pub(crate) fn from_handle(handle: Handle<M>) -> Self {
        Self { handle: Arc::new(handle) }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner<M>> {
        &self.handle.inner
    }

    /// A builder with [`Config::default`].
    pub fn builder(manager: M) -> Builder<M> {
        Builder::new(manager)
    }

    /// Checks out a connection: an idle one, a new one, or the next one returned, whichever
    /// comes first, waiting at most `checkout_timeout`. Waiters are served in FIFO order.
    ///
    /// Cancel-safe: dropping the future at any point loses nothing; a connection granted to it
    /// meanwhile goes to the next waiter, one being made for it joins the idle set, and one
    /// being pre-pinged is closed (unless the manager is [`cancel_safe`](Manager::cancel_safe)),
    /// since the abandoned ping's reply would reach its next user.
    ///
    /// # Errors
    /// [`PoolError::Timeout`] with the pool's state and the last connection error;
    /// [`PoolError::Connect`] when connecting failed for good and `fail_fast` is on;
    /// [`PoolError::Closed`] once the pool is closed.
    pub async fn get(&self) -> Result<Conn<M>, PoolError<M::Error>> {
        self.get_timeout(self.inner().config.checkout_timeout).await
    }

    /// [`get`](Self::get) with another timeout; `Duration::MAX` waits without a limit.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn get_timeout(&self, timeout: Duration) -> Result<Conn<M>, PoolError<M::Error>> {
        let inner = self.inner();
        // The clock is read only once the checkout has to wait: taking an idle connection
        // reads no clock at all (lifetimes are enforced on return and by maintenance).
        let mut clock: Option<(Instant, Option<Instant>)> = None;
        let mut start = || {
            *clock.get_or_insert_with(|| {
                let now = Instant::now();
                (now, now.checked_add(timeout))
            })
        };
        loop {
            let pooled = match inner.core.checkout(|| start().1) {
                Checkout::Ready(pooled) => pooled,
                Checkout::Closed => return Err(PoolError::Closed),
                Checkout::Wait { waiter, connect, earliest } => {
                    let (started, _) = start();
                    if earliest {
                        inner.deadline_timer.notify_one();
                    }
                    inner.spawn_connects(connect);
                    // A span for the wait only: the fast path creates none.
                    let span = tracing::debug_span!(
                        "connpool.checkout_wait",
                        pool = %inner.counters.name,
                        waited_us = tracing::field::Empty,
                    );
                    // No timer of its own: the pool's deadline timer grants `TimedOut`.
                    let grant = WaitGrant { inner, waiter: Some(waiter) }.instrument(span.clone()).await;
                    span.record("waited_us", started.elapsed().as_micros() as u64);
                    match grant {
                        Grant::Conn(pooled) => {
                            inner.counters.record_wait(started.elapsed());
                            pooled
                        }
                        Grant::Error(error) => return Err(PoolError::Connect(error)),
                        Grant::Closed => return Err(PoolError::Closed),
                        Grant::TimedOut => return Err(inner.timed_out(started)),
                    }
                }
            };
            // From here the connection is a `Conn`: dropped with this future, it goes back.
            let mut conn = Conn::new(Arc::clone(inner), pooled);
            if inner.needs_pre_ping(&conn) {
                // Dropped mid-ping, a request/response connection holds the ping's unread
                // reply: closed rather than handed on.
                if !inner.manager.cancel_safe() {
                    conn.close_on_drop(Reason::Cancelled);
                }
                let healthy = inner.validate(conn.pooled_mut()).await;
                if !healthy {
                    conn.close_on_drop(Reason::Validation);
                    drop(conn);
                    let (started, deadline) = start();
                    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                        return Err(inner.timed_out(started));
                    }
                    continue;
                }
                conn.keep_on_drop();
            }
            if let Some(hook) = &inner.hooks.before_checkout {
                if !inner.manager.cancel_safe() {
                    conn.close_on_drop(Reason::Cancelled);
                }
                if let Err(error) = hook.run(HookStage::BeforeCheckout, &mut conn.pooled_mut().conn).await {
                    inner.hook_failed(&error);
                    conn.close_on_drop(Reason::HookFailed);
                    return Err(PoolError::Hook(error));
                }
                conn.keep_on_drop();
            }
            Counters::bump(&inner.counters.checkouts);
            return Ok(conn);
        }
    }

    /// The pool's state.
    pub fn status(&self) -> Status {
        Status::from_counts(self.inner().core.counts())
    }

    /// The pool's state and counters.
    pub fn metrics(&self) -> Metrics {
        self.inner().counters.snapshot(self.status())
    }

    /// The pool's configuration (sizes as built; see [`status`](Self::status) after a resize).
    pub fn config(&self) -> &Config {
        &self.inner().config
    }

    /// The pool's name (its `Config::name`, or `"default"`).
    pub fn name(&self) -> &str {
        &self.inner().counters.name
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.inner().manager
    }

    /// Changes the sizes at runtime. Shrinking closes idle connections at once and checked-out
    /// ones as they come back; growing lets waiters and maintenance open more.
    ///
    /// # Errors
    /// [`ConfigError`](crate::ConfigError) if `max_size` is 0 or below `min_size`.
    pub fn resize(&self, min_size: usize, max_size: usize) -> Result<(), crate::ConfigError> {
        if max_size == 0 {
            return Err(crate::ConfigError::ZeroMaxSize);
        }
        if min_size > max_size {
            return Err(crate::ConfigError::MinAboveMax { min_size, max_size });
        }
        let inner = self.inner();
        let resized = inner.core.resize(min_size, max_size);
        for pooled in resized.close {
            inner.close(pooled, Reason::Resize);
        }
        inner.spawn_connects(resized.connect);
        Ok(())
    }

    /// Closes the pool: waiting and future checkouts fail with [`PoolError::Closed`], idle
    /// connections are closed now and checked-out ones when they come back (or are detached),
    /// connection attempts in flight are abandoned, and no new one starts. Returns once no
    /// connection is open and no attempt is in flight; `deadline` bounds the wait
    /// (`Duration::MAX`: no bound).
    ///
    /// # Errors
    /// [`CloseError`] saying what was left when `deadline` passed.
    pub async fn close(&self, deadline: Duration) -> Result<(), CloseError> {
        let inner = self.inner();
        inner.close_now();
        inner.drained(Instant::now().checked_add(deadline)).await
    }
}

/// Waits for a waiter's grant; gives the waiter up (and anything granted to it) when dropped
/// first.
struct WaitGrant<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    waiter: Option<crate::sync::Arc<WaiterOf<M>>>,
}

impl<M: Manager> Future for WaitGrant<'_, M> {
    type Output = GrantOf<M>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let waiter = self.waiter.as_ref().expect("polled after completion");
        match waiter.poll_grant(cx) {
            Poll::Ready(grant) => {
                self.waiter = None;
                Poll::Ready(grant)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<M: Manager> Drop for WaitGrant<'_, M> {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            // Granted while being cancelled: pass the connection on.
            if let Some(Grant::Conn(pooled)) = self.inner.core.cancel(&waiter) {
                self.inner.give_back(pooled, None);
            }
        }
    }
}

impl<M: Manager> Inner<M> {
    /// Whether a connection must be validated before checkout: pre-ping is on and it was not
    /// used or checked just now.
    fn needs_pre_ping(&self, conn: &Conn<M>) -> bool {
        let config = &self.config;
        config.pre_ping && conn.last_active().elapsed() >= config.pre_ping_skip_within
    }
}
