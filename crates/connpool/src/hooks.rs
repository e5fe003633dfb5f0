//! Lifecycle hooks: async steps the pool runs on a connection after opening it (session setup:
//! `SET search_path`, `SET ROLE`), before handing it to a checkout, and after it comes back (a
//! recycle step: `ROLLBACK`, `DISCARD ALL`).
//!
//! Each hook has its own timeout; each run is panic-contained. A hook that fails, times out or
//! panics costs the connection: after connect, the attempt fails with
//! [`ConnectError::Hook`](crate::ConnectError::Hook); before checkout, the connection is closed
//! and the checkout fails with [`PoolError::Hook`](crate::PoolError::Hook); after return, the
//! connection is closed (counted in `Metrics::hook_failures` and `Closed::hook_failed`). A
//! recycle runs in a task of its own: the returning code never waits for it, and the connection
//! stays counted as in use until it is done.
//!
//! ```
//! use std::time::Duration;
//! use connpool::{Hook, Pool, sim::{SimConnection, SimManager}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The connection's type, written out, lets the closure borrow it in its future.
//! let pool = Pool::builder(SimManager::new())
//!     .after_connect(Hook::new(|conn: &mut SimConnection| Box::pin(async move {
//!         conn.query(Duration::ZERO).await?; // e.g. `SET search_path TO app`
//!         Ok(())
//!     })))
//!     .after_return(Hook::new(|conn: &mut SimConnection| Box::pin(async move {
//!         conn.query(Duration::ZERO).await?; // e.g. `ROLLBACK`
//!         Ok(())
//!     })).timeout(Duration::from_secs(1)))
//!     .build()
//!     .await?;
//! # drop(pool.get().await?);
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use crate::manager::panic_message;

/// A boxed error, as a hook (or a credential provider) returns it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The future a hook returns, borrowing the connection.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

type HookFn<C> = dyn for<'a> Fn(&'a mut C) -> HookFuture<'a> + Send + Sync;

/// One lifecycle hook: an async function of the connection, with a timeout (5 s by default).
pub struct Hook<C> {
    run: Arc<HookFn<C>>,
    timeout: Duration,
}

impl<C> Clone for Hook<C> {
    fn clone(&self) -> Self {
        Self { run: Arc::clone(&self.run), timeout: self.timeout }
    }
}

impl<C> fmt::Debug for Hook<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl<C> Hook<C> {
    /// A hook running `f`, which returns a boxed future: `Hook::new(|conn: &mut Conn|
    /// Box::pin(async move { ...; Ok(()) }))` (with the connection's type written out).
    pub fn new<F>(f: F) -> Self
    where
        F: for<'a> Fn(&'a mut C) -> HookFuture<'a> + Send + Sync + 'static,
    {
        Self { run: Arc::new(f), timeout: Duration::from_secs(5) }
    }

    /// How long one run may take (`Duration::MAX`: no limit).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs the hook on `conn`, with its timeout, containing a panic.
    pub(crate) async fn run(&self, stage: HookStage, conn: &mut C) -> Result<(), HookError> {
        let run = std::panic::AssertUnwindSafe((self.run)(conn)).catch_unwind();
        let outcome = if self.timeout == Duration::MAX {
            Ok(run.await)
        } else {
            tokio::time::timeout(self.timeout, run).await
        };
        match outcome {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(source))) => Err(HookError::Failed { stage, source }),
            Ok(Err(payload)) => Err(HookError::Panicked { stage, message: panic_message(&*payload) }),
            Err(_) => Err(HookError::TimedOut { stage, after: self.timeout }),
        }
    }
}

/// The hooks of a pool.
pub(crate) struct Hooks<C> {
    pub(crate) after_connect: Option<Hook<C>>,
    pub(crate) before_checkout: Option<Hook<C>>,
    pub(crate) after_return: Option<Hook<C>>,
}

impl<C> Default for Hooks<C> {
    fn default() -> Self {
        Self { after_connect: None, before_checkout: None, after_return: None }
    }
}

impl<C> fmt::Debug for Hooks<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("after_connect", &self.after_connect)
            .field("before_checkout", &self.before_checkout)
            .field("after_return", &self.after_return)
            .finish()
    }
}

/// Where a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HookStage {
    /// After a connection is opened, before it joins the pool.
    AfterConnect,
    /// Before a connection is handed to a checkout.
    BeforeCheckout,
    /// After a connection comes back, before it is reused.
    AfterReturn,
}

impl fmt::Display for HookStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AfterConnect => "after-connect",
            Self::BeforeCheckout => "before-checkout",
            Self::AfterReturn => "after-return",
        })
    }
}

/// A hook that did not succeed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HookError {
    /// The hook returned an error (the source).
    Failed {
        /// Where it ran.
        stage: HookStage,
        /// What it returned.
        source: BoxError,
    },
    /// The hook did not finish within its timeout.
    TimedOut {
        /// Where it ran.
        stage: HookStage,
        /// Its timeout.
        after: Duration,
    },
    /// The hook panicked (contained).
    Panicked {
        /// Where it ran.
        stage: HookStage,
        /// The panic's message.
        message: String,
    },
}

impl HookError {
    /// Where the hook ran.
    pub fn stage(&self) -> HookStage {
        match self {
            Self::Failed { stage, .. } | Self::TimedOut { stage, .. } | Self::Panicked { stage, .. } => {
                *stage
            }
        }
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed { stage, .. } => write!(f, "the {stage} hook failed"),
            Self::TimedOut { stage, after } => write!(f, "the {stage} hook timed out after {after:?}"),
            Self::Panicked { stage, message } => write!(f, "the {stage} hook panicked: {message}"),
        }
    }
}

impl std::error::Error for HookError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed { source, .. } => Some(&**source),
            _ => None,
        }
    }
}
