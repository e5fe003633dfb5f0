//! The engine under [`Pool`](crate::Pool): the state its handles, connections and background
//! tasks share, connection attempts, closing, and the checkout deadline timer.
//!
//! # Implementation details
//!
//! **Who keeps what alive.** Users hold [`Pool`](crate::Pool) handles; all of them share one
//! [`Handle`] whose drop shuts the pool down. Checked-out connections and background tasks hold
//! the [`Inner`] itself, so a connection can still come back (and be closed) after the last
//! handle is gone, and a task can finish the step it is in; but every background task (the
//! maintenance loop, the deadline timer, each connection attempt and its retry pauses) races its
//! work against [`Shutdown`], so nothing goes on once the pool is closed or dropped: the tasks end
//! at once, an attempt in flight is abandoned, and its place is released.
//!
//! **Closed means closed.** The core never asks for an attempt once it is closed, whichever
//! transition asks (a return, a break, a detach, a failed attempt's pause ending). `close` waits
//! until no connection is open and no attempt is in flight: every path that ends one (a
//! connection closed or detached, an attempt settled or abandoned) signals `drained`.
//!
//! **Guards.** State that must be undone if a future is dropped or a manager call panics lives
//! in a guard: [`Attempt`] returns an attempt's place in `connecting`; the health check's guard in
//! `maintenance.rs` returns a connection taken out for checking; `Conn` returns (or, cancelled
//! mid-pre-ping, closes) a checked-out one. Manager calls are contained in `manager.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::backoff::{jitter, shortened};
use crate::config::Config;
use crate::core::{Core, Followup, Pooled};
use crate::error::{ConnectError, PoolError};
use crate::hooks::{HookError, HookStage, Hooks};
use crate::leak::LeakRegistry;
use crate::manager::{self, Failure, Manager};
use crate::metrics::{Counters, Reason, Status};

/// The pause after a failed connection attempt when the retry policy has no delays.
const FAILED_CONNECT_PAUSE: Duration = Duration::from_millis(250);

pub(crate) type CoreOf<M> = Core<<M as Manager>::Connection, ConnectError<<M as Manager>::Error>>;

/// The state shared by a pool's handles, its connections and its background tasks.
pub(crate) struct Inner<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: Config,
    pub(crate) core: CoreOf<M>,
    pub(crate) counters: Counters,
    next_id: AtomicU64,
    /// Signalled whenever a connection closes or an attempt ends, for `close` to wait on.
    drained: Notify,
    /// Wakes the deadline timer task for a waiter with an earlier deadline.
    pub(crate) deadline_timer: Notify,
    pub(crate) shutdown: Shutdown,
    pub(crate) leaks: LeakRegistry,
    pub(crate) hooks: Hooks<M::Connection>,
}

/// The one handle every [`Pool`](crate::Pool) clone shares: dropping the last closes the pool.
pub(crate) struct Handle<M: Manager> {
    pub(crate) inner: Arc<Inner<M>>,
}

impl<M: Manager> Drop for Handle<M> {
    fn drop(&mut self) {
        self.inner.close_now();
    }
}

/// Tells the background tasks to stop; set once, never cleared.
#[derive(Debug, Default)]
pub(crate) struct Shutdown {
    done: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    fn trigger(&self) {
        self.done.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Resolves once triggered.
    pub(crate) async fn wait(&self) {
        loop {
            // Created before the check: `notify_waiters` reaches it from here on.
            let notified = self.notify.notified();
            if self.done.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

impl<M: Manager> Inner<M> {
    pub(crate) fn new(manager: M, config: Config, core: CoreOf<M>, hooks: Hooks<M::Connection>) -> Self {
        Self {
            manager,
            core,
            counters: Counters::new(config.name.as_deref().unwrap_or("default").into()),
            next_id: AtomicU64::new(0),
            drained: Notify::new(),
            deadline_timer: Notify::new(),
            shutdown: Shutdown::default(),
            leaks: LeakRegistry::new(config.leak_detection_threshold.is_some()),
            hooks,
            config,
        }
    }

    /// A hook failed (counted and logged).
    pub(crate) fn hook_failed(&self, error: &HookError) {
        Counters::bump(&self.counters.hook_failures);
        tracing::warn!(error = error as &dyn std::error::Error, "a connection hook failed");
    }

    /// Closes the pool: waiting and future checkouts fail, idle connections close now and
    /// checked-out ones when they come back, attempts in flight and background tasks stop.
    pub(crate) fn close_now(&self) {
        for pooled in self.core.close() {
            self.close(pooled, Reason::PoolClosed);
        }
        self.shutdown.trigger();
        self.drained.notify_waiters();
    }

    /// Waits until no connection is open and no attempt is in flight, or `deadline`.
    pub(crate) async fn drained(&self, deadline: Option<Instant>) -> Result<(), crate::CloseError> {
        loop {
            let notified = self.drained.notified();
            let counts = self.core.counts();
            if counts.open == 0 && counts.connecting == 0 {
                return Ok(());
            }
            let Some(deadline) = deadline else {
                notified.await;
                continue;
            };
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let counts = self.core.counts();
                if counts.open == 0 && counts.connecting == 0 {
                    return Ok(());
                }
                return Err(crate::CloseError { open: counts.open, connecting: counts.connecting });
            }
        }
    }

    /// Does what a transition asked for: closes the connection that left the count, starts
    /// attempts.
    pub(crate) fn follow(self: &Arc<Self>, followup: Followup<M::Connection>, reason: Reason) {
        if let Some(pooled) = followup.close {
            self.close(pooled, reason);
        }
        self.spawn_connects(followup.connect);
    }

    /// Closes a connection that has already left the count, and signals a waiting `close`.
    pub(crate) fn close(&self, pooled: Pooled<M::Connection>, reason: Reason) {
        self.counters.closed(reason);
        tracing::debug!(id = pooled.id, ?reason, "closing connection");
        drop(pooled);
        self.drained.notify_waiters();
    }

    /// A connection left the pool without being closed by it (detached).
    pub(crate) fn detached(self: &Arc<Self>) {
        self.counters.closed(Reason::Detached);
        let followup = self.core.closed_one();
        self.follow(followup, Reason::Detached);
        self.drained.notify_waiters();
    }

    /// Starts `n` connection attempts in the background; their places in `connecting` are
    /// already reserved.
    pub(crate) fn spawn_connects(self: &Arc<Self>, n: usize) {
        for _ in 0..n {
            let inner = Arc::clone(self);
            tokio::spawn(async move {
                let shutdown = inner.shutdown.wait();
                tokio::select! {
                    biased;
                    () = shutdown => {}
                    () = Attempt::new(&inner).run() => {}
                }
            });
        }
    }

    /// One connection attempt with the retry policy's retries and the connect timeout.
    pub(crate) async fn connect_with_retry(
        &self,
    ) -> Result<Pooled<M::Connection>, Arc<ConnectError<M::Error>>> {
        let config = &self.config;
        let mut retry = 0;
        loop {
            let error =
                match tokio::time::timeout(config.connect_timeout, manager::connect(&self.manager)).await {
                    Ok(Ok(mut conn)) => match self.set_up(&mut conn).await {
                        Ok(()) => {
                            Counters::bump(&self.counters.created);
                            return Ok(self.new_pooled(conn));
                        }
                        Err(error) => ConnectError::Hook(error),
                    },
                    Ok(Err(Failure::Error(error))) => ConnectError::Backend(error),
                    Ok(Err(Failure::Panicked(message))) => {
                        Counters::bump(&self.counters.manager_panics);
                        tracing::error!(%message, "the manager panicked in connect");
                        ConnectError::Panicked(message)
                    }
                    Err(_) => ConnectError::Timeout(config.connect_timeout),
                };
            Counters::bump(&self.counters.connect_failures);
            retry += 1;
            match config.retry.delay(retry) {
                Some(delay) => {
                    tracing::debug!(
                        error = &error as &dyn std::error::Error,
                        retry,
                        ?delay,
                        "connection attempt failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                None => {
                    tracing::warn!(error = &error as &dyn std::error::Error, "connection attempt failed");
                    return Err(Arc::new(error));
                }
            }
        }
    }

    /// Runs the after-connect hook, if any, on a new connection.
    async fn set_up(&self, conn: &mut M::Connection) -> Result<(), HookError> {
        let Some(hook) = &self.hooks.after_connect else { return Ok(()) };
        hook.run(HookStage::AfterConnect, conn).await.inspect_err(|error| self.hook_failed(error))
    }

    /// Runs the manager's validation with the validation timeout; a connection that passes is
    /// marked checked (and its next health check scheduled).
    pub(crate) async fn validate(&self, pooled: &mut Pooled<M::Connection>) -> bool {
        let timeout = self.config.validate_timeout;
        let ok = match tokio::time::timeout(timeout, manager::validate(&self.manager, &mut pooled.conn)).await
        {
            Ok(Ok(())) => true,
            Ok(Err(Failure::Panicked(message))) => {
                Counters::bump(&self.counters.manager_panics);
                tracing::error!(id = pooled.id, %message, "the manager panicked in validate");
                false
            }
            Ok(Err(Failure::Error(_))) | Err(_) => false,
        };
        if ok {
            let now = Instant::now();
            pooled.last_checked = now;
            pooled.next_check = self.next_check(now);
        }
        ok
    }

    /// Takes back a checked-out connection: closed if `close` says so, if the manager finds it
    /// broken (or panics deciding), or if it expired; else returned to a waiter or the idle set.
    pub(crate) fn give_back(self: &Arc<Self>, mut pooled: Pooled<M::Connection>, close: Option<Reason>) {
        let now = Instant::now();
        let reason = close.or_else(|| match manager::is_broken(&self.manager, &mut pooled.conn) {
            Ok(true) => Some(Reason::Broken),
            Ok(false) => pooled.expired(now).then_some(Reason::Lifetime),
            Err(message) => {
                Counters::bump(&self.counters.manager_panics);
                tracing::error!(id = pooled.id, %message, "the manager panicked in is_broken; closing the connection");
                Some(Reason::Broken)
            }
        });
        if let Some(reason) = reason {
            // Out of the count first, then closed: closing signals a waiting `close`.
            let followup = self.core.closed_one();
            self.close(pooled, reason);
            self.follow(followup, reason);
            return;
        }
        pooled.last_used = now;
        if self.hooks.after_return.is_some() {
            // Recycled in a task of its own, then put back; counted as in use meanwhile. With no
            // runtime to run it on (a connection dropped after the runtime), it is closed.
            if tokio::runtime::Handle::try_current().is_ok() {
                let inner = Arc::clone(self);
                tokio::spawn(async move { inner.recycle(pooled).await });
            } else {
                let followup = self.core.closed_one();
                self.close(pooled, Reason::HookFailed);
                self.follow(followup, Reason::HookFailed);
            }
            return;
        }
        self.put_back(pooled);
    }

    /// Runs the after-return hook on a returned connection, then puts it back (or closes it if
    /// the hook failed). Stopped at shutdown, it closes the connection.
    async fn recycle(self: Arc<Self>, pooled: Pooled<M::Connection>) {
        let Some(hook) = self.hooks.after_return.clone() else { return self.put_back(pooled) };
        let mut recycling = Recycling { inner: &self, pooled: Some(pooled) };
        let run = async {
            let conn = &mut recycling.pooled.as_mut().expect("present until settled").conn;
            hook.run(HookStage::AfterReturn, conn).await
        };
        let shutdown = self.shutdown.wait();
        let outcome = tokio::select! {
            biased;
            () = shutdown => None,
            outcome = run => Some(outcome),
        };
        match outcome {
            Some(Ok(())) => {
                let pooled = recycling.pooled.take().expect("present until settled");
                self.put_back(pooled);
            }
            Some(Err(error)) => {
                self.hook_failed(&error);
                let pooled = recycling.pooled.take().expect("present until settled");
                let followup = self.core.closed_one();
                self.close(pooled, Reason::HookFailed);
                self.follow(followup, Reason::HookFailed);
            }
            // The guard closes it.
            None => {}
        }
    }

    /// Puts a connection back in the pool (or closes it if the pool is closed or over its size).
    fn put_back(self: &Arc<Self>, pooled: Pooled<M::Connection>) {
        let followup = self.core.put_back(pooled);
        if followup.close.is_some() {
            let reason = if self.core.counts().closed { Reason::PoolClosed } else { Reason::Resize };
            self.follow(followup, reason);
        } else {
            self.spawn_connects(followup.connect);
        }
    }

    /// The timeout error of a checkout that started waiting at `started`.
    pub(crate) fn timed_out(&self, started: Instant) -> PoolError<M::Error> {
        Counters::bump(&self.counters.timeouts);
        PoolError::Timeout {
            waited: started.elapsed(),
            status: Status::from_counts(self.core.counts()),
            last_error: self.core.last_error(),
        }
    }

    fn new_pooled(&self, conn: M::Connection) -> Pooled<M::Connection> {
        let now = Instant::now();
        let config = &self.config;
        let expires = config
            .max_lifetime
            .and_then(|lifetime| now.checked_add(shortened(lifetime, config.lifetime_jitter)));
        Pooled {
            conn,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            created: now,
            expires,
            last_used: now,
            last_checked: now,
            next_check: self.next_check(now),
        }
    }

    /// When a connection checked at `now` is next due, ±20% so that connections made together
    /// are not all checked together.
    fn next_check(&self, now: Instant) -> Option<Instant> {
        self.config.health_check_interval.and_then(|every| now.checked_add(jitter(every, 0.2)))
    }
}

/// A returned connection being recycled; dropped unsettled (at shutdown), it is closed.
struct Recycling<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    pooled: Option<Pooled<M::Connection>>,
}

impl<M: Manager> Drop for Recycling<'_, M> {
    fn drop(&mut self) {
        if let Some(pooled) = self.pooled.take() {
            let followup = self.inner.core.closed_one();
            self.inner.close(pooled, Reason::PoolClosed);
            self.inner.follow(followup, Reason::PoolClosed);
        }
    }
}

/// A connection attempt's place in `connecting`: settled by a connection, else returned when
/// dropped (the attempt failed and paused, was abandoned at shutdown, or its task panicked).
struct Attempt<'a, M: Manager> {
    inner: &'a Arc<Inner<M>>,
    settled: bool,
}

impl<'a, M: Manager> Attempt<'a, M> {
    fn new(inner: &'a Arc<Inner<M>>) -> Self {
        Self { inner, settled: false }
    }

    async fn run(mut self) {
        let inner = self.inner;
        match inner.connect_with_retry().await {
            Ok(pooled) => {
                self.settled = true;
                let followup = inner.core.connected(pooled);
                inner.follow(followup, Reason::PoolClosed);
            }
            Err(error) => {
                inner.core.connect_failed(error);
                // Pause before the next attempt rather than hammer a backend that is down: the
                // retry policy's longest delay, jittered. The place stays taken meanwhile.
                let retry = &inner.config.retry;
                let pause = retry.delay(retry.max_retries()).unwrap_or(jitter(FAILED_CONNECT_PAUSE, 0.2));
                tokio::time::sleep(pause).await;
            }
        }
    }
}

impl<M: Manager> Drop for Attempt<'_, M> {
    fn drop(&mut self) {
        if !self.settled {
            let followup = self.inner.core.connect_released();
            self.inner.follow(followup, Reason::PoolClosed);
            self.inner.drained.notify_waiters();
        }
    }
}

/// Times out waiting checkouts: one timer for the whole pool, sleeping until the earliest
/// waiter's deadline. Ends at shutdown.
pub(crate) async fn deadline_timer<M: Manager>(inner: Arc<Inner<M>>) {
    let mut next: Option<Instant> = None;
    loop {
        let notified = inner.deadline_timer.notified();
        let shutdown = inner.shutdown.wait();
        tokio::select! {
            biased;
            () = shutdown => return,
            () = notified => {}
            () = sleep_until(next) => {}
        }
        next = inner.core.expire(Instant::now());
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
