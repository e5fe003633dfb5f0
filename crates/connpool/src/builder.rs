//! Building a pool.

use std::sync::Arc;

use futures_util::future::join_all;

use crate::config::Config;
use crate::core::{Core, Limits};
use crate::engine::{Handle, Inner, deadline_timer};
use crate::error::BuildError;
use crate::hooks::{Hook, Hooks};
use crate::manager::Manager;
use crate::pool::Pool;

/// Builds a [`Pool`].
#[derive(Debug)]
pub struct Builder<M: Manager> {
    manager: M,
    config: Config,
    hooks: Hooks<M::Connection>,
}

impl<M: Manager> Builder<M> {
    pub(crate) fn new(manager: M) -> Self {
        Self { manager, config: Config::default(), hooks: Hooks::default() }
    }

    /// Runs `hook` on every new connection before it joins the pool (session setup). A failure
    /// fails the connection attempt with [`ConnectError::Hook`](crate::ConnectError::Hook).
    pub fn after_connect(mut self, hook: Hook<M::Connection>) -> Self {
        self.hooks.after_connect = Some(hook);
        self
    }

    /// Runs `hook` on a connection before a checkout gets it. A failure closes the connection
    /// and fails the checkout with [`PoolError::Hook`](crate::PoolError::Hook).
    pub fn before_checkout(mut self, hook: Hook<M::Connection>) -> Self {
        self.hooks.before_checkout = Some(hook);
        self
    }

    /// Runs `hook` on every connection that comes back, before it is reused (a recycle step such
    /// as `ROLLBACK` or `DISCARD ALL`), in a task of its own. A failure closes the connection.
    pub fn after_return(mut self, hook: Hook<M::Connection>) -> Self {
        self.hooks.after_return = Some(hook);
        self
    }

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

    /// Builds the pool and opens its `min_size` connections before returning. Dropping the
    /// returned future abandons the attempts and the pool.
    ///
    /// # Errors
    /// [`BuildError::Config`] for an invalid configuration; [`BuildError::Connect`] if a
    /// first connection cannot be opened (after the retry policy's retries).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn build(self) -> Result<Pool<M>, BuildError<M::Error>> {
        let pool = self.build_lazy()?;
        let inner = pool.inner();
        let n = inner.core.reserve_connects(inner.config.min_size);
        let attempts = join_all((0..n).map(|_| inner.connect_with_retry())).await;
        let first_error = attempts.iter().find_map(|attempt| attempt.as_ref().err().cloned());
        if first_error.is_some() {
            // Closed before the attempts are settled, so that settling them asks for no more.
            inner.close_now();
        }
        for attempt in attempts {
            let followup = match attempt {
                Ok(conn) => inner.core.connected(conn),
                Err(error) => {
                    inner.core.connect_failed(error);
                    inner.core.connect_released()
                }
            };
            inner.follow(followup, crate::metrics::Reason::PoolClosed);
        }
        match first_error {
            Some(error) => Err(BuildError::Connect(error)),
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
        let Self { manager, config, hooks } = self;
        config.validate()?;
        let limits = Limits {
            min_size: config.min_size,
            max_size: config.max_size,
            max_connecting: config.max_connecting,
            fail_fast: config.fail_fast,
        };
        let inner = Arc::new(Inner::new(manager, config, Core::new(limits), hooks));
        tokio::spawn(crate::maintenance::run(Arc::clone(&inner)));
        tokio::spawn(deadline_timer(Arc::clone(&inner)));
        Ok(Pool::from_handle(Handle { inner }))
    }
}
