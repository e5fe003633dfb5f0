//! The public face: building a pool, checking connections out, resizing and closing.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Notify;

use crate::config::Config;
use crate::conn::Conn;
use crate::core::{Checkout, Core, Grant, Limits, Pooled, Waiter};
use crate::error::{BuildError, ConnectError, PoolError};
use crate::manager::Manager;
use crate::metrics::{Counters, Metrics, Reason, Status};

/// A deadline for timeouts too long to represent.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The pause after a failed connection attempt when the retry policy has no delays.
const FAILED_CONNECT_PAUSE: Duration = Duration::from_millis(250);

pub(crate) type CoreOf<M> = Core<<M as Manager>::Connection, ConnectError<<M as Manager>::Error>>;
type WaiterOf<M> = Waiter<<M as Manager>::Connection, ConnectError<<M as Manager>::Error>>;
type GrantOf<M> = Grant<<M as Manager>::Connection, ConnectError<<M as Manager>::Error>>;

/// The state shared by a pool's handles, its connections and its background tasks.
pub(crate) struct Inner<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: Config,
    pub(crate) core: CoreOf<M>,
    pub(crate) counters: Counters,
    next_id: AtomicU64,
    /// Signalled whenever a connection is closed, for `close` to wait on.
    closed_signal: Notify,
    /// Wakes the deadline timer task for a waiter with an earlier deadline, or to exit.
    pub(crate) deadline_timer: Arc<Notify>,
    pub(crate) leaks: crate::maintenance::LeakRegistry,
}

/// A pool of connections made by a [`Manager`].
///
/// Cloning gives another handle to the same pool. Build one with [`Pool::builder`]; it needs a
/// tokio runtime, for its connection attempts and its background maintenance.
pub struct Pool<M: Manager> {
    pub(crate) inner: Arc<Inner<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("status", &self.status()).finish_non_exhaustive()
    }
}

/// Builds a [`Pool`].
#[derive(Debug)]
pub struct Builder<M: Manager> {
    manager: M,
    config: Config,
}

impl<M: Manager> Builder<M> {
    /// Uses `config` (a profile, with any overrides).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Changes the configuration in place: `.configure(|c| c.max_size = 40)`.
    pub fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// Builds the pool and opens its `min_size` connections before returning.
    ///
    /// # Errors
    /// [`BuildError::Config`] for an invalid configuration; [`BuildError::Connect`] if a
    /// first connection cannot be opened (after the retry policy's retries).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn build(self) -> Result<Pool<M>, BuildError<M::Error>> {
        let pool = self.build_lazy()?;
        let inner = &pool.inner;
        let n = inner.core.reserve_connects(inner.config.min_size);
        let attempts: Vec<_> = (0..n).map(|_| tokio::spawn(connect_with_retry(inner.clone()))).collect();
        let mut first_error = None;
        for attempt in attempts {
            let result = attempt.await.expect("connection attempts do not panic");
            match result {
                Ok(conn) => {
                    let (closed, _) = inner.core.connected(conn);
                    debug_assert!(closed.is_none());
                }
                Err(error) => {
                    inner.core.connect_failed(error.clone());
                    inner.core.connect_released();
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => {
                pool.close_now();
                Err(BuildError::Connect(error))
            }
            None => Ok(pool),
        }
    }

    /// Builds the pool without waiting for connections: background maintenance opens the
    /// `min_size` connections, and checkouts open more as needed.
    ///
    /// # Errors
    /// [`BuildError::Config`] for an invalid configuration.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn build_lazy(self) -> Result<Pool<M>, BuildError<M::Error>> {
        let Self { manager, config } = self;
        config.validate()?;
        let limits = Limits {
            min_size: config.min_size,
            max_size: config.max_size,
            max_connecting: config.max_connecting,
            fail_fast: config.fail_fast,
        };
        let inner = Arc::new(Inner {
            manager,
            core: Core::new(limits),
            counters: Counters::new(),
            next_id: AtomicU64::new(0),
            closed_signal: Notify::new(),
            deadline_timer: Arc::new(Notify::new()),
            leaks: crate::maintenance::LeakRegistry::new(config.leak_detection_threshold.is_some()),
            config,
        });
        tokio::spawn(crate::maintenance::run(Arc::downgrade(&inner)));
        tokio::spawn(deadline_timer(Arc::downgrade(&inner), inner.deadline_timer.clone()));
        Ok(Pool { inner })
    }
}

impl<M: Manager> Pool<M> {
    /// A builder with [`Config::default`].
    pub fn builder(manager: M) -> Builder<M> {
        Builder { manager, config: Config::default() }
    }

    /// Checks out a connection: an idle one, a new one, or the next one returned, whichever
    /// comes first, waiting at most `checkout_timeout`. Waiters are served in FIFO order.
    ///
    /// Cancel-safe: dropping the future at any point loses nothing; a connection granted to it
    /// meanwhile goes to the next waiter, and one being made for it joins the idle set.
    ///
    /// # Errors
    /// [`PoolError::Timeout`] with the pool's state and the last connection error;
    /// [`PoolError::Connect`] when connecting failed for good and `fail_fast` is on;
    /// [`PoolError::Closed`] once the pool is closed.
    pub async fn get(&self) -> Result<Conn<M>, PoolError<M::Error>> {
        self.get_timeout(self.inner.config.checkout_timeout).await
    }

    /// [`get`](Self::get) with another timeout.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn get_timeout(&self, timeout: Duration) -> Result<Conn<M>, PoolError<M::Error>> {
        let inner = &self.inner;
        // The clock is read only once the checkout has to wait: taking an idle connection
        // reads no clock at all (lifetimes are enforced on return and by maintenance).
        let mut clock: Option<(Instant, Instant)> = None;
        let mut start = || {
            *clock.get_or_insert_with(|| {
                let now = Instant::now();
                (now, now.checked_add(timeout).unwrap_or(now + FAR_FUTURE))
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
                    // No timer of its own: the pool's deadline timer grants `TimedOut`.
                    let grant = WaitGrant { inner, waiter: Some(waiter) }.await;
                    match grant {
                        Grant::Conn(pooled) => {
                            inner.counters.record_wait(started.elapsed());
                            pooled
                        }
                        Grant::Error(error) => return Err(PoolError::Connect(error)),
                        Grant::Closed => return Err(PoolError::Closed),
                        Grant::TimedOut => {
                            Counters::bump(&inner.counters.timeouts);
                            return Err(PoolError::Timeout {
                                waited: started.elapsed(),
                                status: self.status(),
                                last_error: inner.core.last_error(),
                            });
                        }
                    }
                }
            };
            // From here the connection is a `Conn`: if this future is dropped while pre-ping
            // runs, the connection goes back to the pool rather than being lost.
            let mut conn = Conn::new(inner.clone(), pooled);
            if inner.needs_pre_ping(&conn) && !inner.validate(conn.pooled_mut()).await {
                conn.close_on_drop(Reason::Validation);
                drop(conn);
                let (started, deadline) = start();
                if Instant::now() >= deadline {
                    Counters::bump(&inner.counters.timeouts);
                    return Err(PoolError::Timeout {
                        waited: started.elapsed(),
                        status: self.status(),
                        last_error: inner.core.last_error(),
                    });
                }
                continue;
            }
            Counters::bump(&inner.counters.checkouts);
            return Ok(conn);
        }
    }

    /// The pool's state.
    pub fn status(&self) -> Status {
        Status::from_counts(self.inner.core.counts())
    }

    /// The pool's state and counters.
    pub fn metrics(&self) -> Metrics {
        self.inner.counters.snapshot(self.status())
    }

    /// The pool's configuration (sizes as built; see [`status`](Self::status) after a resize).
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.inner.manager
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
        let (close, connect) = self.inner.core.resize(min_size, max_size);
        for pooled in close {
            self.inner.close(pooled, Reason::Resize);
        }
        self.inner.spawn_connects(connect);
        Ok(())
    }

    /// Closes the pool: waiting and future checkouts fail with [`PoolError::Closed`], idle
    /// connections are closed now and checked-out ones when they come back. Returns once all
    /// are closed, or at `deadline`; returns whether all were closed.
    pub async fn close(&self, deadline: Duration) -> bool {
        self.close_now();
        let deadline = Instant::now() + deadline;
        loop {
            let notified = self.inner.closed_signal.notified();
            if self.inner.core.counts().open == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.inner.core.counts().open == 0;
            }
        }
    }

    fn close_now(&self) {
        for pooled in self.inner.core.close() {
            self.inner.close(pooled, Reason::PoolClosed);
        }
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
    /// Starts `n` connection attempts in the background.
    pub(crate) fn spawn_connects(self: &Arc<Self>, n: usize) {
        for _ in 0..n {
            let inner = self.clone();
            tokio::spawn(async move {
                let result = connect_with_retry(inner.clone()).await;
                let more = match result {
                    Ok(pooled) => {
                        let (closed, more) = inner.core.connected(pooled);
                        if let Some(pooled) = closed {
                            inner.close(pooled, Reason::PoolClosed);
                        }
                        more
                    }
                    Err(error) => {
                        inner.core.connect_failed(error);
                        // Pause before the next attempt rather than hammer a backend that is
                        // down: the retry policy's longest delay, jittered.
                        let retry = &inner.config.retry;
                        let pause = retry
                            .delay(retry.max_retries())
                            .unwrap_or(FAILED_CONNECT_PAUSE.mul_f64(0.8 + 0.4 * fastrand::f64()));
                        tokio::time::sleep(pause).await;
                        inner.core.connect_released()
                    }
                };
                inner.spawn_connects(more);
            });
        }
    }

    /// Closes a connection that has left the count.
    pub(crate) fn close(&self, pooled: Pooled<M::Connection>, reason: Reason) {
        self.counters.closed(reason);
        tracing::debug!(id = pooled.id, ?reason, "closing connection");
        drop(pooled);
        self.closed_signal.notify_waiters();
    }

    /// Whether a connection must be validated before checkout: pre-ping is on and it was not
    /// used or checked just now.
    fn needs_pre_ping(&self, conn: &Conn<M>) -> bool {
        let config = &self.config;
        config.pre_ping && conn.last_active().elapsed() >= config.pre_ping_skip_within
    }

    /// Runs the manager's validation with the validation timeout.
    pub(crate) async fn validate(&self, pooled: &mut Pooled<M::Connection>) -> bool {
        let timeout = self.config.validate_timeout;
        let ok = matches!(
            tokio::time::timeout(timeout, self.manager.validate(&mut pooled.conn)).await,
            Ok(Ok(()))
        );
        if ok {
            pooled.last_checked = Instant::now();
        }
        ok
    }

    /// Takes back a checked-out connection.
    pub(crate) fn give_back(self: &Arc<Self>, mut pooled: Pooled<M::Connection>, close: Option<Reason>) {
        let now = Instant::now();
        let reason = if close.is_some() {
            close
        } else if self.manager.is_broken(&mut pooled.conn) {
            Some(Reason::Broken)
        } else if pooled.expired(now) {
            Some(Reason::Lifetime)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.close(pooled, reason);
            let more = self.core.closed_one();
            self.spawn_connects(more);
            return;
        }
        pooled.last_used = now;
        let (close, more) = self.core.put_back(pooled);
        if let Some(pooled) = close {
            let closed = self.core.counts().closed;
            self.close(pooled, if closed { Reason::PoolClosed } else { Reason::Resize });
        }
        self.spawn_connects(more);
    }

    fn new_pooled(&self, conn: M::Connection) -> Pooled<M::Connection> {
        let now = Instant::now();
        let config = &self.config;
        let expires = config.max_lifetime.map(|lifetime| {
            let jitter = config.lifetime_jitter.mul_f64(fastrand::f64());
            now + lifetime.saturating_sub(jitter)
        });
        Pooled {
            conn,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            created: now,
            expires,
            last_used: now,
            last_checked: now,
        }
    }
}

impl<M: Manager> Drop for Inner<M> {
    fn drop(&mut self) {
        // Let the deadline timer task see that the pool is gone.
        self.deadline_timer.notify_one();
    }
}

/// Times out waiting checkouts: one timer for the whole pool, sleeping until the earliest
/// waiter's deadline. Holds only a weak reference, so it ends with the pool.
async fn deadline_timer<M: Manager>(pool: std::sync::Weak<Inner<M>>, wake: Arc<Notify>) {
    let mut next: Option<Instant> = None;
    loop {
        let notified = wake.notified();
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = notified => {}
                }
            }
            None => notified.await,
        }
        let Some(inner) = pool.upgrade() else { return };
        next = inner.core.expire(Instant::now());
    }
}

/// One connection attempt with the retry policy's retries and the connect timeout.
async fn connect_with_retry<M: Manager>(
    inner: Arc<Inner<M>>,
) -> Result<Pooled<M::Connection>, Arc<ConnectError<M::Error>>> {
    let config = &inner.config;
    let mut retry = 0;
    loop {
        let error = match tokio::time::timeout(config.connect_timeout, inner.manager.connect()).await {
            Ok(Ok(conn)) => {
                Counters::bump(&inner.counters.created);
                return Ok(inner.new_pooled(conn));
            }
            Ok(Err(error)) => ConnectError::Backend(error),
            Err(_) => ConnectError::Timeout(config.connect_timeout),
        };
        Counters::bump(&inner.counters.connect_failures);
        retry += 1;
        match config.retry.delay(retry) {
            Some(delay) if !inner.core.counts().closed => {
                tracing::debug!(%error, retry, ?delay, "connection attempt failed; retrying");
                tokio::time::sleep(delay).await;
            }
            _ => {
                tracing::warn!(%error, "connection attempt failed");
                return Err(Arc::new(error));
            }
        }
    }
}
